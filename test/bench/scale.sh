#!/usr/bin/env bash
# dmf_train at scale next to the MF yardstick: generated ratings of a named shape
# (test/bench/gen_ratings.c), 5% held out by hash, a full default training with the
# held-out ratings as its validation (early stopping), and the MF yardstick
# (test/bench/mf_baseline.c, one thread, its settings from docs/bench/search.md) on the
# same rows. Prints one markdown table: wall time, epochs, seconds per epoch, peak memory,
# validation RMSE of each, and the ratio of the wall times.
#
#   test/bench/scale.sh [--shape 10m|25m|netflix|tiny] [--options JSON] [--no-mf]
#                       [--max-memory SIZE]
#
# --shape S         10m: 70,000 users x 10,000 items x 10M ratings (MovieLens-10M-shaped,
#                   the default); 25m: 162,541 x 62,423 x 25M (MovieLens-25M); netflix:
#                   480,189 x 17,770 x 100M; tiny: 2,000 x 800 x 120k (a minute, to try it)
# --options JSON    dmf_train options over the defaults, e.g. '{"epochs": 3}' to time
#                   epochs without training to convergence
# --no-mf           leave out the MF yardstick (it takes about as long as dmf)
# --max-memory S    dmf.max_memory for the training (default 16GB)
#
# Server: as bench.sh and perf.sh (test/bench/server.sh): the server the PG* variables
# name, or a throwaway cluster. Tables go to schema dmf_scale, dropped at the end.
# Needs gcc, and several GB of memory for the large shapes.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/../.." && pwd)

log() { printf '[scale %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

shape=10m
options='{}'
mf=1
max_memory=16GB
while (($#)); do
    case $1 in
        --shape) shape=${2:?--shape needs a name}; shift 2 ;;
        --options) options=${2:?--options needs JSON}; shift 2 ;;
        --no-mf) mf=0; shift ;;
        --max-memory) max_memory=${2:?--max-memory needs a size}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
case $shape in
    10m) dims="70000 10000 10000000" ;;
    25m) dims="162541 62423 25000000" ;;
    netflix) dims="480189 17770 100000000" ;;
    tiny) dims="2000 800 120000" ;;
    *) die "--shape must be 10m, 25m, netflix or tiny: $shape" ;;
esac
[[ $max_memory =~ ^[0-9]+[kMGT]?B$ ]] || die "--max-memory must be a size like 16GB: $max_memory"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dmf-scale.XXXXXX")
# shellcheck source=server.sh
source "$BENCH_DIR/server.sh"
q -c 'SELECT 1' >/dev/null || die "cannot connect to the server"
[[ $(q -v o="$options" <<<"SELECT jsonb_typeof(:'o'::jsonb)" 2>/dev/null) == object ]] \
    || die "--options must be a JSON object: $options"

gcc -O2 -o "$tmp/gen_ratings" "$BENCH_DIR/gen_ratings.c" -lm || die "could not build gen_ratings.c"
gcc -std=gnu99 -O2 -o "$tmp/mf_baseline" "$BENCH_DIR/mf_baseline.c" -lm || die "could not build mf_baseline.c"

read -r n_users n_items n_ratings <<<"$dims"
log "generating $n_users users x $n_items items x $n_ratings ratings"
q <<SQL
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS dmf_scale CASCADE;
CREATE SCHEMA dmf_scale;
CREATE UNLOGGED TABLE dmf_scale.ratings (user_id bigint NOT NULL, item_id bigint NOT NULL, rating float8 NOT NULL);
CREATE TABLE dmf_scale.models (name text, model bytea);
SQL
"$tmp/gen_ratings" "$n_users" "$n_items" "$n_ratings" 1 | q -c "\\copy dmf_scale.ratings FROM pstdin"
log "splitting: 5% held out by hash"
q <<'SQL'
SET client_min_messages = warning;
CREATE UNLOGGED TABLE dmf_scale.train AS SELECT * FROM dmf_scale.ratings
    WHERE abs(hashtext('s:' || user_id || ':' || item_id)::bigint) % 100 >= 5;
CREATE UNLOGGED TABLE dmf_scale.heldout AS SELECT * FROM dmf_scale.ratings
    WHERE abs(hashtext('s:' || user_id || ':' || item_id)::bigint) % 100 < 5;
DROP TABLE dmf_scale.ratings;
ANALYZE dmf_scale.train;
ANALYZE dmf_scale.heldout;
SQL
cleanup_schema() { q -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS dmf_scale CASCADE" >/dev/null 2>&1 || true; }
trap 'cleanup_schema; rm -rf "$tmp"' EXIT
if declare -F dmf_at_exit >/dev/null; then dmf_at_exit cleanup_schema; fi

log "dmf_train, options $options over the defaults, validation the held-out rows"
q -v o="$options" -v mm="$max_memory" >"$tmp/dmf.out" <<'SQL' &
SET dmf.max_memory = :'mm';
\o /dev/null
SELECT clock_timestamp() AS t0 \gset
INSERT INTO dmf_scale.models
SELECT 'dmf', dmf_train('dmf_scale.train', 'user_id', 'item_id', 'rating',
                        '{"validation": "dmf_scale.heldout"}'::jsonb || :'o'::jsonb);
\o
SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz);
SQL
train_job=$!
# the training backend's peak memory, read while it lives
hwm=0
sleep 1
pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE query LIKE '%dmf_scale.train%' AND pid <> pg_backend_pid() LIMIT 1" || true)
while kill -0 "$train_job" 2>/dev/null; do
    if [[ -n $pid && -r /proc/$pid/status ]]; then
        kb=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [[ -n $kb ]] && ((kb > hwm)) && hwm=$kb
    fi
    sleep 2
done
wait "$train_job" || die "dmf_train failed: $(cat "$tmp/dmf.out")"
dmf_wall=$(tail -n 1 "$tmp/dmf.out")
# the wall time in parts: reading the rows, the epochs, what follows them inside the
# training (fold-in, every factor), and the rest (the model's bytes, storing them)
read -r dmf_epochs dmf_best dmf_spe dmf_val dmf_threads dmf_load dmf_epochs_s dmf_train_s <<<"$(q <<'SQL'
SELECT concat_ws(' ', i->>'epochs_run', i->>'best_epoch', round((i->>'seconds_per_epoch')::numeric, 2),
       round((i->>'best_validation_rmse')::numeric, 4), i->>'threads_used', round((i->>'load_seconds')::numeric, 1),
       (SELECT round(sum((h->>'seconds')::numeric), 1) FROM jsonb_array_elements(i->'history') h),
       round((i->>'training_seconds')::numeric, 1))
FROM dmf_scale.models, LATERAL (SELECT dmf_info(model) AS i) x WHERE name = 'dmf';
SQL
)"
log "dmf: $dmf_wall s, $dmf_epochs epochs, validation RMSE $dmf_val"
dmf_finish=$(awk -v a="$dmf_train_s" -v b="$dmf_epochs_s" 'BEGIN {printf "%.1f", a - b}')
dmf_store=$(awk -v w="$dmf_wall" -v l="$dmf_load" -v t="$dmf_train_s" 'BEGIN {printf "%.1f", w - l - t}')

# the stored model predicts: 100,000 held-out ratings in a fresh session (the first call
# decodes the model)
log "predicting 100,000 held-out ratings with the stored model"
read -r pred_rmse pred_s <<<"$(q <<'SQL'
SELECT clock_timestamp() AS t0 \gset
SELECT concat_ws(' ', round(sqrt(avg((dmf_predict(m.model, h.user_id, h.item_id) - h.rating) ^ 2))::numeric, 4),
       round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 1))
FROM dmf_scale.models m, (SELECT * FROM dmf_scale.heldout LIMIT 100000) h WHERE m.name = 'dmf';
SQL
)"

mf_wall=- mf_val=- mf_epochs=- ratio=-
if ((mf)); then
    log "MF yardstick on the same rows, one thread"
    q -c "\\copy dmf_scale.train (user_id, item_id, rating) TO '$tmp/train.tsv'"
    q -c "\\copy dmf_scale.heldout (user_id, item_id, rating) TO '$tmp/heldout.tsv'"
    start=$(date +%s.%N)
    "$tmp/mf_baseline" --train "$tmp/train.tsv" --val "$tmp/heldout.tsv" --test "$tmp/heldout.tsv" \
        --out "$tmp/mf.out" --dim 100 --lr 0.005 --reg 0.04 --init 0.01 --fold-reg 15 --seed 1 >"$tmp/mf.log"
    end=$(date +%s.%N)
    mf_wall=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}')
    mf_epochs=$(sed -n 's/^epochs \([0-9]*\) best_epoch \([0-9]*\).*/\1 (\2)/p' "$tmp/mf.log")
    mf_val=$(sed -n 's/.*validation_rmse \([0-9.]*\).*/\1/p' "$tmp/mf.log")
    ratio=$(awk -v a="$dmf_wall" -v b="$mf_wall" 'BEGIN {printf "%.2f", a / b}')
fi

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "Shape $shape: $n_users users x $n_items items x $n_ratings ratings generated, 5% held out; $cpu, $(nproc) cores"
echo
echo "| | wall (s) | epochs (best) | s / epoch | peak memory (MB) | validation RMSE |"
echo "|---|---|---|---|---|---|"
echo "| dmf_train ($dmf_threads threads, load ${dmf_load} s), options $options | $(printf %.1f "$dmf_wall") | $dmf_epochs ($dmf_best) | $dmf_spe | $((hwm / 1024)) | $dmf_val |"
echo "| MF yardstick (1 thread) | $mf_wall | $mf_epochs | | | $mf_val |"
echo
echo "dmf_train / MF wall time: $ratio"
echo "dmf_train's wall time: reading ${dmf_load} s, epochs ${dmf_epochs_s} s, after the epochs (fold-in, factors) ${dmf_finish} s, the model's bytes and storing them ${dmf_store} s"
echo "the stored model on 100,000 held-out ratings: RMSE $pred_rmse in $pred_s s (decoding it included)"
