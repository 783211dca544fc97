#!/usr/bin/env bash
# The numeric core and the model decoder under valgrind's memcheck: no read
# of uninitialised memory, no access outside an allocation, no bad free.
# Plain gcc builds (no sanitizer), every buffer its own malloc
# (DMF_STANDALONE); needs no server.
#
#   - the seed generator (test/fuzz/gen_seeds.c: encodes and decodes models)
#   - the fuzz harness's checks (test/fuzz/fuzz_model.c, run by
#     test/fuzz/run_inputs.c) on the seeds and on DMF_VALGRIND_VARIANTS (1000)
#     variants of each: a changed byte with the checksums recomputed, and a
#     truncation
#   - the unit tests (test/unit/test_numeric.c)
#   - small trainings (test/unit/train_small.c): plain (the alternating schedule)
#     on two threads with dropout, validation and extra inputs; the same with
#     training users left unfolded (the fold-in choice checked); the same with
#     blocks; DMF-D with centred inputs; implicit feedback
#
# Valgrind does not decode AVX-512, and reports a CPU without it: the AVX2
# variants of the kernels (src/core/platform.h) and OpenBLAS run here.  Each run
# is bounded by DMF_VALGRIND_TIMEOUT seconds (300).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$here/../lib/cluster.sh"

variants=${DMF_VALGRIND_VARIANTS:-1000}
limit=${DMF_VALGRIND_TIMEOUT:-300}

fail() {
    echo "FAILED: $*"
    exit 1
}

dmf_install_deps
command -v valgrind >/dev/null 2>&1 || fail "valgrind is required (Debian: apt-get install valgrind)"
pgc="$(dmf_pg_config)"
work="$(mktemp -d)"
dmf_at_exit "rm -rf '$work'"

start=$SECONDS
echo "== building with gcc, no sanitizer"
make -s -C "$DMF_ROOT/test/fuzz" O="$work" PG_CONFIG="$pgc" plain >"$work/build.log" 2>&1 ||
    { cat "$work/build.log"; fail "could not build the fuzz harness"; }
src="$DMF_ROOT/src/core"
cflags=(-std=gnu99 -O1 -g -Wall -DDMF_STANDALONE -I"$src")
gcc "${cflags[@]}" -DDMF_TEST_INTERRUPTS "$DMF_ROOT/test/unit/test_numeric.c" "$src/sparse.c" "$src/grouped.c" "$src/network.c" \
    "$src/rng.c" "$src/quantizer.c" "$src/fold_in.c" "$src/helper_thread.c" "$src/score.c" "$src/adam.c" "$src/levels.c" "$src/prepare.c" "$src/implicit.c" -lopenblas -lm -lpthread -o "$work/test_numeric"
gcc "${cflags[@]}" "$DMF_ROOT/test/unit/train_small.c" "$src/train.c" "$src/network.c" \
    "$src/sparse.c" "$src/rng.c" "$src/quantizer.c" "$src/fold_in.c" "$src/helper_thread.c" "$src/adam.c" \
    "$src/block_sides.c" "$src/dmfd.c" "$src/fold_choice.c" "$src/prepare.c" "$src/implicit.c" "$src/train_block.c" \
    "$src/train_alternating.c" "$src/grouped.c" \
    -lopenblas -lm -lpthread -o "$work/train_small"

# vg NAME COMMAND...: run under memcheck, fail on any error it reports
vg() {
    local name=$1 rc=0 t0=$SECONDS
    shift
    OPENBLAS_NUM_THREADS=1 timeout -k 10 "$limit" \
        valgrind -q --error-exitcode=99 --leak-check=no --track-origins=yes \
        --log-file="$work/$name.vg" "$@" >"$work/$name.out" 2>&1 || rc=$?
    sed 's/^/    /' "$work/$name.out" | tail -n 5
    if [[ -s "$work/$name.vg" ]]; then
        head -n 80 "$work/$name.vg"
        fail "$name: valgrind reported errors (exit $rc)"
    fi
    ((rc != 124 && rc != 137)) || fail "$name: did not finish within $limit s"
    ((rc == 0)) || fail "$name: exit $rc"
    echo "$name: clean ($((SECONDS - t0)) s)"
}

mkdir "$work/seeds"
vg gen_seeds "$work/gen_seeds_plain" "$work/seeds"
vg decoder "$work/run_inputs" -m "$variants" "$work/seeds"/*
vg test_numeric "$work/test_numeric"
vg train_small "$work/train_small"
echo "$((SECONDS - start)) s"
echo "ok"
