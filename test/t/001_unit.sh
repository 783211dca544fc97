#!/usr/bin/env bash
# Unit tests of the numeric core (gradients, quantizers, CSR), built and run
# outside the server.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cc -std=gnu99 -O1 -g -Wall -DDMF_STANDALONE -fsanitize=address,undefined \
    -fno-sanitize-recover=undefined -I"$root/src" \
    "$root/test/unit/test_numeric.c" "$root/src/sparse.c" "$root/src/network.c" \
    "$root/src/rng.c" "$root/src/quantizer.c" "$root/src/fold_in.c" \
    -lopenblas -lm -lpthread -o "$out/test_numeric"
OPENBLAS_NUM_THREADS=1 "$out/test_numeric"
