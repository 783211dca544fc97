# The server a benchmark runs on, sourced by bench.sh and perf.sh once their
# arguments are checked: with DMF_USE_EXISTING=1 or PGHOST / PGPORT / PGDATABASE /
# PGSERVICE set, that server (the extension installed there); otherwise
# test/lib/cluster.sh installs what is missing, builds and installs the extension and
# starts a throwaway cluster, stopped and deleted at exit. Expects ROOT, tmp (a scratch
# directory removed at exit), log and die; defines q and qf.
trap 'rm -rf "$tmp"' EXIT
if [[ ${DMF_USE_EXISTING:-0} == 1 || -n ${PGHOST:-}${PGPORT:-}${PGDATABASE:-}${PGSERVICE:-} ]]; then
    log "using the existing server (${PGHOST:-default host}:${PGPORT:-default port}, database ${PGDATABASE:-default})"
else
    [[ -f $ROOT/test/lib/cluster.sh ]] || die "$ROOT/test/lib/cluster.sh not found (or set DMF_USE_EXISTING=1 / PG* variables)"
    # shellcheck disable=SC1091
    source "$ROOT/test/lib/cluster.sh"
    # sourcing replaced our EXIT trap: the library stops and deletes the cluster at exit
    dmf_at_exit "rm -rf '$tmp'"
    log "installing dependencies, building and installing the extension"
    dmf_install_deps >&2
    dmf_build_install >&2
    log "starting a throwaway cluster"
    dmf_cluster_start >&2
fi

q() { psql -X -v ON_ERROR_STOP=1 -qAt "$@"; }
qf() { q "$@" >&2; }   # run a SQL file whose output is progress (stderr)
