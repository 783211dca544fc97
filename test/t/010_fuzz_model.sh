#!/usr/bin/env bash
# Fuzz the model decoder (src/core/model_format.c) with libFuzzer, AddressSanitizer
# and UndefinedBehaviorSanitizer: no input may crash it, read outside the
# buffer, or decode into a model that breaks the invariants the SQL functions
# rely on (see test/fuzz/fuzz_model.c).  Decoded models also run through the
# branches and fold-in (src/core/fold_in.c) against their anchors, as the factor
# aggregates do, so the sanitizers check those reads too.
#
# Builds test/fuzz into a temporary directory, writes a seed corpus of small
# valid models (test/fuzz/gen_seeds.c), and fuzzes for a bounded time: both
# raw mutations (stopped by the checksums) and mutations whose CRC32C fields
# the harness recomputes (reaching the structural checks).  Needs no server.
#
#   DMF_FUZZ_SECONDS   most seconds of fuzzing (default 60)
#   DMF_FUZZ_RUNS      most inputs (default 5000000); whichever comes first
#
# clang with libFuzzer and the sanitizer runtimes is required (Debian: clang
# and libclang-rt-14-dev; test/lib/cluster.sh's dmf_install_deps installs
# them): without it this test fails, it does not skip.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$here/../lib/cluster.sh"

seconds=${DMF_FUZZ_SECONDS:-60}
runs=${DMF_FUZZ_RUNS:-5000000}

fail() {
    echo "FAILED: $*"
    exit 1
}

cc=""
for c in "${CC_FUZZ:-}" clang clang-14; do
    if [[ -n "$c" ]] && command -v "$c" >/dev/null 2>&1; then
        cc=$c
        break
    fi
done
[[ -n "$cc" ]] || fail "clang is required for the fuzz test (Debian: apt-get install clang libclang-rt-14-dev)"
pgc="$(dmf_pg_config)" || fail "pg_config not found (PostgreSQL 15 server headers are required)"

work="$(mktemp -d)"
dmf_at_exit "rm -rf '$work'"

echo "== building the harness with $($cc --version | head -n 1)"
if ! make -s -C "$DMF_ROOT/test/fuzz" O="$work" PG_CONFIG="$pgc" CC_FUZZ="$cc" >"$work/build.log" 2>&1; then
    cat "$work/build.log"
    if grep -qiE 'libclang_rt|fuzzer|cannot find -l|sanitizer' "$work/build.log"; then
        echo "libFuzzer or the sanitizer runtimes are missing (Debian: apt-get install clang libclang-rt-14-dev)"
    fi
    fail "could not build the fuzz harness"
fi

mkdir -p "$work/seeds" "$work/corpus"
"$work/gen_seeds" "$work/seeds" || fail "the seed generator failed"

echo "== fuzzing dmf_model_peek and dmf_model_decode for at most $seconds s or $runs inputs"
rc=0
# -timeout: one input may take 10 s; the outer timeout is a last resort
OPENBLAS_NUM_THREADS=1 ASAN_OPTIONS=abort_on_error=0:detect_leaks=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    timeout -k 10 $((seconds + 120)) \
    "$work/fuzz_model" -max_total_time="$seconds" -runs="$runs" -timeout=10 \
    -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
    -artifact_prefix="$work/" "$work/corpus" "$work/seeds" >"$work/fuzz.log" 2>&1 || rc=$?

executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -n 1)
per_second=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/fuzz.log" | tail -n 1)
counts=$(grep '^fuzz_model: ' "$work/fuzz.log" | tail -n 1 || true)
crashes=$(find "$work" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)

if ((rc != 0)) || [[ -n "$crashes" ]]; then
    echo "---- last lines of the fuzzer log ----"
    grep -v '^#[0-9]' "$work/fuzz.log" | tail -n 60
    echo "---- end of the fuzzer log ----"
    for f in $crashes; do
        echo "input that failed: $(basename "$f") ($(stat -c %s "$f") bytes; first byte is the mode, base64 below)"
        base64 "$f" | head -c 20000
        echo
    done
    echo "reproduce: base64 -d > input <<< '...'; make -C test/fuzz O=/tmp/fz && /tmp/fz/fuzz_model input"
    if ((rc == 124 || rc == 137)); then
        fail "the fuzzer did not stop in time"
    fi
    fail "the fuzzer found a failing input (exit $rc)"
fi
[[ -n "$executions" ]] || { tail -n 30 "$work/fuzz.log"; fail "no execution count in the fuzzer log"; }
echo "$executions inputs (${per_second:-?}/s), no crash, no sanitizer report"
echo "${counts#fuzz_model: }"
echo "corpus: $(find "$work/corpus" -type f | wc -l) new inputs kept by the fuzzer"
echo "ok"
