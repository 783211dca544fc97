#!/usr/bin/env bash
# Unit tests of the numeric core (gradients, quantizers, CSR), built and run
# outside the server.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cc -std=gnu99 -O1 -g -Wall -DDMF_STANDALONE -DDMF_TEST_INTERRUPTS -fsanitize=address,undefined \
    -fno-sanitize-recover=undefined -I"$root/src/core" \
    "$root/test/unit/test_numeric.c" "$root/src/core/sparse.c" "$root/src/core/grouped.c" "$root/src/core/network.c" \
    "$root/src/core/rng.c" "$root/src/core/quantizer.c" "$root/src/core/fold_in.c" "$root/src/core/helper_thread.c" \
    "$root/src/core/score.c" "$root/src/core/adam.c" "$root/src/core/levels.c" "$root/src/core/prepare.c" "$root/src/core/implicit.c" \
    -lopenblas -lm -lpthread -o "$out/test_numeric"
OPENBLAS_NUM_THREADS=1 "$out/test_numeric"
