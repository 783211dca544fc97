#!/usr/bin/env bash
# Run every dmf test: the pg_regress suites, the test/t/*.sh scripts and the
# benchmarks' quick modes, against a throwaway cluster. Works on a fresh Debian 12
# machine as root (installs what is missing) and as a normal user who already
# has PostgreSQL 15 and its server headers.
#
# Ends with the line "N passed, M failed" and exits non-zero if anything
# failed. pg_regress counts as one suite, as does each script and each bench.
#
#   DMF_SUITE_TIMEOUT  seconds one suite may run before it is killed (1800)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib/cluster.sh
source "$here/lib/cluster.sh"
cd "$DMF_ROOT"

# Decide the suites up front, so a setup failure still counts them all.
t_scripts=()
for t in test/t/*.sh; do
    [[ -e "$t" ]] || continue            # no scripts: the glob stays literal
    if [[ -x "$t" ]]; then
        t_scripts+=("$t")
    else
        dmf_log "skipping $t: not executable"
    fi
done
benches=()
for b in test/bench/bench.sh test/bench/perf.sh test/bench/implicit.sh; do
    [[ -f "$b" ]] && benches+=("$b")
done
planned=$((1 + ${#t_scripts[@]} + ${#benches[@]}))

passed=0
failed=0
failed_names=()
last_rc=0

summary() {
    if ((${#failed_names[@]} > 0)); then
        echo "failed suites: ${failed_names[*]}"
    fi
    echo "$passed passed, $failed failed"
}

setup_failed() {
    dmf_err "setup failed ($1): no test could run"
    failed=$planned
    failed_names=("setup:$1")
    summary
    exit 1
}

# run_suite NAME COMMAND...: run with a time limit and no stdin, count the
# result in passed/failed and leave the exit code in last_rc. Output is not
# captured, so a failing test's messages appear in place.
run_suite() {
    local name=$1 start=$SECONDS
    shift
    echo
    echo "=== $name"
    last_rc=0
    timeout -k 30 "${DMF_SUITE_TIMEOUT:-1800}" "$@" </dev/null || last_rc=$?
    if ((last_rc == 0)); then
        passed=$((passed + 1))
        echo "=== $name: ok ($((SECONDS - start)) s)"
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        if ((last_rc == 124)); then
            dmf_err "$name timed out after ${DMF_SUITE_TIMEOUT:-1800} s"
        fi
        echo "=== $name: FAILED (exit $last_rc, $((SECONDS - start)) s)"
    fi
}

dmf_install_deps || setup_failed deps
dmf_build_install || setup_failed build

# Preload pg_cron when it is installed, so tests can CREATE EXTENSION pg_cron.
conf=()
if [[ -f "$("$(dmf_pg_config)" --pkglibdir)/pg_cron.so" ]]; then
    # the README's pg_cron recipe runs in its own database (test/t/060_readme.sh)
    conf+=("shared_preload_libraries = 'pg_cron'" "cron.database_name = 'dmf_readme'")
fi
dmf_cluster_start "${conf[@]}" || setup_failed cluster
# pg_cron's launcher retries every second until its database exists
if ((${#conf[@]} > 0)); then
    psql -X -q -d postgres -c "CREATE DATABASE dmf_readme" || setup_failed cluster
fi
# Scripts and the bench source the same library: make them reuse this server.
export DMF_USE_EXISTING=1

# Stale files would be misleading if this run fails before writing new ones.
rm -f regression.diffs regression.out
run_suite pg_regress make PG_CONFIG="$(dmf_pg_config)" installcheck
if ((last_rc != 0)) && [[ -f regression.diffs ]]; then
    echo "---- regression.diffs ----"
    cat regression.diffs
    echo "---- end of regression.diffs ----"
fi

for t in "${t_scripts[@]}"; do
    run_suite "$t" "$t"
done

# the benchmarks' quick modes: generated data, so the scripts cannot rot
for b in "${benches[@]}"; do
    run_suite "$b --quick" bash "$b" --quick
done

if ((failed > 0)); then
    dmf_cluster_log_tail 50
fi
dmf_cluster_stop
summary
((failed == 0))
