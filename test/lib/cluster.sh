# shellcheck shell=bash
# Shared helpers for the dmf scripts: install build dependencies, build and
# install the extension, and run a throwaway PostgreSQL cluster.
#
# Source it from a bash script that uses `set -euo pipefail`:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"
#   dmf_install_deps
#   dmf_build_install
#   dmf_cluster_start "shared_preload_libraries = 'pg_cron'"
#   psql -c 'select 1'          # PGHOST, PGPORT, PGUSER, PGDATABASE are set
#
# The cluster is stopped and deleted when the script exits (EXIT trap), so
# nothing is left behind even when a test fails half way.
#
# Environment knobs:
#   PG_CONFIG           pg_config to build against (default: PostgreSQL 15's)
#   DMF_PG_MAJOR        major version looked for when PG_CONFIG is unset (15)
#   DMF_USE_EXISTING=1  dmf_cluster_start does nothing: use the server that
#                       PGHOST/PGPORT/... already point at
#   DMF_PGPORT          first port tried for the throwaway cluster (54329)
#   DMF_PG_CONF         extra postgresql.conf lines (newline separated)
#   DMF_SERVER_ENV      array of VAR=value the server starts with (e.g. LD_PRELOAD)
#   DMF_KEEP_CLUSTER=1  leave the stopped cluster's directory for debugging

# Repository root: this file lives in <root>/test/lib/.
if [[ -z "${DMF_ROOT:-}" ]]; then
    DMF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fi
export DMF_ROOT

DMF_APT_PACKAGES=(
    build-essential
    postgresql-15
    postgresql-server-dev-15
    postgresql-contrib
    libopenblas-dev
    postgresql-15-cron
    gnuplot-nox
    clang               # PGXS on Debian builds LLVM bitcode with clang-14
    libclang-rt-14-dev  # sanitizer runtimes for clang builds
    valgrind
    python3             # JSON and report helpers of the tests and benchmarks
)

dmf_log() { printf '==> %s\n' "$*" >&2; }
dmf_err() { printf 'error: %s\n' "$*" >&2; }

dmf__is_root() { [[ "$(id -u)" -eq 0 ]]; }

# Print the pg_config to use. Prefer the version-specific one: Debian's
# /usr/bin/pg_config picks the newest server-dev package installed, which
# may not be the server we start.
dmf_pg_config() {
    if [[ -n "${PG_CONFIG:-}" ]]; then
        printf '%s\n' "$PG_CONFIG"
        return 0
    fi
    local versioned="/usr/lib/postgresql/${DMF_PG_MAJOR:-15}/bin/pg_config"
    if [[ -x "$versioned" ]]; then
        printf '%s\n' "$versioned"
    elif command -v pg_config >/dev/null 2>&1; then
        command -v pg_config
    else
        return 1
    fi
}

# Put the server's own bin directory first in PATH, so psql, pg_ctl,
# pg_isready and initdb all match the server version (Debian's /usr/bin
# versions are wrappers that guess the version).
dmf__use_pg_bindir() {
    local pgc bindir
    pgc="$(dmf_pg_config)" || return 1
    bindir="$("$pgc" --bindir)" || return 1
    case ":$PATH:" in
        *":$bindir:"*) ;;
        *) PATH="$bindir:$PATH" ;;
    esac
    export PATH
}

dmf__pkg_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

# Install build and test dependencies (Debian 12). Only touches apt when a
# package is missing, so a second run costs a few dpkg-query calls.
dmf_install_deps() {
    if dmf__is_root && command -v apt-get >/dev/null 2>&1; then
        local missing=() pkg
        for pkg in "${DMF_APT_PACKAGES[@]}"; do
            dmf__pkg_installed "$pkg" || missing+=("$pkg")
        done
        if ((${#missing[@]} > 0)); then
            dmf_log "installing: ${missing[*]}"
            # Package lists on a fresh machine are empty or stale.
            apt-get update || return 1
            DEBIAN_FRONTEND=noninteractive apt-get install -y \
                --no-install-recommends "${missing[@]}" </dev/null || return 1
        fi
    elif command -v dpkg-query >/dev/null 2>&1; then
        # Not root: we cannot install, but can say what may be missing.
        local missing=() pkg
        for pkg in "${DMF_APT_PACKAGES[@]}"; do
            dmf__pkg_installed "$pkg" || missing+=("$pkg")
        done
        if ((${#missing[@]} > 0)); then
            dmf_log "warning: not installed (run this as root to install): ${missing[*]}"
        fi
    fi

    local pgc
    if ! pgc="$(dmf_pg_config)" || ! "$pgc" --pgxs >/dev/null 2>&1; then
        dmf_err "pg_config for PostgreSQL ${DMF_PG_MAJOR:-15} not found."
        dmf_err "On Debian 12, as root: apt-get install postgresql-15 postgresql-server-dev-15 libopenblas-dev build-essential clang"
        dmf_err "or set PG_CONFIG=/path/to/pg_config."
        return 1
    fi
    dmf__use_pg_bindir
}

# Build the extension and install it into the server's directories.
dmf_build_install() {
    local pgc
    pgc="$(dmf_pg_config)" || { dmf_err "pg_config not found (run dmf_install_deps)"; return 1; }
    dmf_log "building dmf with $pgc"
    make -C "$DMF_ROOT" PG_CONFIG="$pgc" -j"$(nproc 2>/dev/null || echo 2)" || return 1

    local pkglibdir sharedir
    pkglibdir="$("$pgc" --pkglibdir)" || return 1
    sharedir="$("$pgc" --sharedir)" || return 1
    if dmf__is_root || { [[ -w "$pkglibdir" ]] && [[ -w "$sharedir/extension" ]]; }; then
        make -C "$DMF_ROOT" PG_CONFIG="$pgc" install || return 1
    elif command -v sudo >/dev/null 2>&1; then
        dmf_log "no write access to $pkglibdir: installing with sudo"
        sudo make -C "$DMF_ROOT" PG_CONFIG="$pgc" install || return 1
    else
        dmf_err "cannot write to $pkglibdir and sudo is not available."
        dmf_err "Run as root: make -C '$DMF_ROOT' PG_CONFIG='$pgc' install"
        return 1
    fi
}

# ---------------------------------------------------------------------------
# Throwaway cluster
# ---------------------------------------------------------------------------

DMF_PGDIR=""        # temp dir: data/, server.log and the unix socket
DMF_PGOWNER=""      # OS user that runs the server
DMF__EXIT_HOOKS=()

# dmf__run_as DIR OWNER COMMAND...: run a command as a server's owner. The
# server refuses to run as root, so as root we switch to an unprivileged
# user. The cd to DIR avoids "could not change directory" noise when our cwd
# is not readable by that user.
dmf__run_as() {
    local dir=$1 owner=$2
    shift 2
    (
        cd "$dir" || exit 1
        if ! dmf__is_root; then
            exec "$@"
        elif command -v runuser >/dev/null 2>&1; then
            exec runuser -u "$owner" -- "$@"
        else
            exec su -s /bin/sh "$owner" -c "$(printf '%q ' "$@")"
        fi
    )
}

# Run a command as the throwaway cluster's owner.
dmf__as_owner() { dmf__run_as "$DMF_PGDIR" "$DMF_PGOWNER" "$@"; }

# Pick the OS user for the server when we are root.
dmf__pick_owner() {
    if ! dmf__is_root; then
        id -un
    elif id postgres >/dev/null 2>&1; then
        echo postgres
    else
        id dmf >/dev/null 2>&1 ||
            useradd --system --no-create-home --shell /usr/sbin/nologin dmf >&2 ||
            return 1
        echo dmf
    fi
}

# True when something already answers on (or has locked) this port. Our
# socket lives in a private directory, so a clash is not really possible;
# skipping busy ports just keeps things unambiguous for people looking at
# `ss` or pg_lsclusters.
dmf__port_busy() {
    local port=$1 dir
    for dir in /var/run/postgresql /tmp; do
        [[ -e "$dir/.s.PGSQL.$port.lock" ]] && return 0
        dmf__pg_answers "$dir" "$port" && return 0
    done
    dmf__pg_answers localhost "$port"
}

# pg_isready exits 0 (accepting) or 1 (rejecting) when a server is there.
dmf__pg_answers() {
    local rc=0
    pg_isready -q -t 2 -h "$1" -p "$2" >/dev/null 2>&1 || rc=$?
    ((rc <= 1))
}

# dmf_cluster_start [postgresql.conf line...]
dmf_cluster_start() {
    if [[ "${DMF_USE_EXISTING:-}" == 1 ]]; then
        return 0
    fi
    if [[ -n "$DMF_PGDIR" ]]; then
        dmf_err "a throwaway cluster is already running in $DMF_PGDIR"
        return 1
    fi
    dmf__use_pg_bindir || { dmf_err "pg_config not found (run dmf_install_deps)"; return 1; }

    DMF_PGOWNER="$(dmf__pick_owner)" || { dmf_err "could not create user dmf"; return 1; }
    DMF_PGDIR="$(mktemp -d "${TMPDIR:-/tmp}/dmf-pg.XXXXXX")" || return 1
    # (Re)install the traps first so a failure below still cleans up.
    dmf__set_traps
    if dmf__is_root; then
        chown "$DMF_PGOWNER" "$DMF_PGDIR" || return 1
    fi

    local port=${DMF_PGPORT:-54329} tries=0
    while dmf__port_busy "$port"; do
        port=$((port + 1))
        tries=$((tries + 1))
        ((tries < 200)) || { dmf_err "no free port found"; return 1; }
    done

    # C locale and UTF8: identical results whatever the machine's locale.
    dmf__as_owner initdb -D "$DMF_PGDIR/data" -U postgres \
        --auth-local=trust --auth-host=reject \
        --encoding=UTF8 --locale=C --no-sync >"$DMF_PGDIR/initdb.log" 2>&1 || {
        cat "$DMF_PGDIR/initdb.log" >&2
        dmf_err "initdb failed"
        return 1
    }

    {
        echo
        echo "# throwaway test cluster"
        echo "listen_addresses = ''"            # unix socket only
        echo "unix_socket_directories = '$DMF_PGDIR'"
        echo "port = $port"
        echo "fsync = off"                     # data is thrown away anyway
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
        echo "log_line_prefix = '%m [%p] %q%u@%d '"
        # pg_cron runs jobs through libpq, by default over TCP to localhost,
        # which is off here: send it to our socket. Later lines still win.
        if [[ "$*${DMF_PG_CONF:-}" == *pg_cron* ]]; then
            echo "cron.host = '$DMF_PGDIR'"
        fi
        local line
        for line in "$@"; do
            printf '%s\n' "$line"
        done
        if [[ -n "${DMF_PG_CONF:-}" ]]; then
            printf '%s\n' "$DMF_PG_CONF"
        fi
    } >>"$DMF_PGDIR/data/postgresql.conf"
    if dmf__is_root; then
        chown "$DMF_PGOWNER" "$DMF_PGDIR/data/postgresql.conf" || return 1
    fi

    dmf_log "starting PostgreSQL in $DMF_PGDIR (port $port, user $DMF_PGOWNER)"
    if ! dmf__as_owner env ${DMF_SERVER_ENV[@]+"${DMF_SERVER_ENV[@]}"} \
        pg_ctl -D "$DMF_PGDIR/data" -l "$DMF_PGDIR/server.log" -w -t 120 start >/dev/null; then
        dmf_err "server did not start"
        return 1
    fi

    export PGHOST="$DMF_PGDIR" PGPORT="$port" PGUSER=postgres PGDATABASE=postgres
}

# Print the last lines of the throwaway cluster's server log.
dmf_cluster_log_tail() {
    local n=${1:-50}
    [[ -n "$DMF_PGDIR" && -f "$DMF_PGDIR/server.log" ]] || return 0
    echo "---- last $n lines of the server log ($DMF_PGDIR/server.log) ----"
    tail -n "$n" "$DMF_PGDIR/server.log"
    echo "---- end of server log ----"
}

# A stopped postmaster can linger as a zombie until init reaps it: that is
# not a running server, though kill -0 says it exists.
dmf__pid_alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state="$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || true)"
    [[ "$state" != Z && -n "$state" ]] || [[ ! -d /proc ]]
}

# Stop the throwaway cluster and delete it. Safe to call more than once.
dmf_cluster_stop() {
    [[ -n "$DMF_PGDIR" ]] || return 0
    local data="$DMF_PGDIR/data" pid=""
    if [[ -f "$data/postmaster.pid" ]]; then
        pid="$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)"
        if ! dmf__as_owner pg_ctl -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1; then
            dmf_err "fast shutdown failed, trying immediate"
            dmf__as_owner pg_ctl -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
        fi
        # Last resort: never leave a server behind.
        if [[ -n "$pid" ]] && dmf__pid_alive "$pid"; then
            dmf_err "killing postmaster $pid"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    if [[ "${DMF_KEEP_CLUSTER:-}" == 1 ]]; then
        dmf_log "cluster left in $DMF_PGDIR"
    else
        rm -rf "$DMF_PGDIR"
    fi
    DMF_PGDIR=""
    unset PGHOST PGPORT PGUSER PGDATABASE
}

# Register a command to run at exit, before the cluster is stopped. Use this
# rather than a trap of your own: the library owns the EXIT trap.
dmf_at_exit() { DMF__EXIT_HOOKS+=("$*"); }

# dmf_use_server: the server the PG* variables (or DMF_USE_EXISTING=1) name,
# where dmf is installed; else install, build and start a throwaway cluster.
dmf_use_server() {
    if [[ -n "${PGHOST:-}${PGPORT:-}${PGUSER:-}${PGDATABASE:-}" || "${DMF_USE_EXISTING:-}" == 1 ]]; then
        dmf__use_pg_bindir || true
        dmf_log "using the server named by PGHOST=${PGHOST:-} PGPORT=${PGPORT:-} PGUSER=${PGUSER:-} PGDATABASE=${PGDATABASE:-}"
    else
        dmf_install_deps
        dmf_build_install
        # shellcheck disable=SC2119 # no extra server settings
        dmf_cluster_start
    fi
}

dmf__on_exit() {
    local rc=$? hook
    set +e
    for hook in "${DMF__EXIT_HOOKS[@]}"; do
        eval "$hook"
    done
    if ((rc != 0)); then
        dmf_cluster_log_tail 50 >&2
    fi
    dmf_cluster_stop
    exit "$rc"
}

# A signal becomes a normal exit, so the EXIT trap stops the cluster.
dmf__set_traps() {
    trap dmf__on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}
dmf__set_traps
