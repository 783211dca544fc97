#!/usr/bin/env bash
# The implicit-feedback benchmark: ratings dropped, every (user, item) an interaction.
# Per seed, per user one interaction held out for test and one for validation (chosen by
# hashtext with the seed: there are no timestamps in the protocol), the rest to train on.
#   (a) sampled: the held-out item ranked among 99 items the user never interacted with
#       (chosen by hashtext; ties to the lower item id) -> HR@10, NDCG@10 (the protocol of
#       Xue et al. and of NCF); users whose held-out item is in no training row are left out;
#   (b) full: every item ranked, the user's training items left out -> hit rate, precision,
#       recall, NDCG and MAP at 10 (dmf_evaluate_ranking for dmf).
# Methods in the same run: popularity, BPR-MF (test/bench/implicit_baselines.c, one thread,
# early stopping on validation), dmf with {"feedback": "implicit"}. On the first seed the
# explicit dmf_train of the same pairs with their ratings is timed too, for the ratio.
#
#   test/bench/implicit.sh [--data PATH] [--seeds 1,2,3,4,5] [--quick] [--options JSON]
#                          [--out DIR]
#
# --data PATH      ratings file as for bench.sh (default: $DMF_BENCH_DATA, else
#                  ../shared/data/ml-1m/ratings.csv beside the project root if it exists)
# --seeds LIST     split seeds (default 1,2,3,4,5)
# --quick          generated data (400 users x 240 items, 4 tastes, ratings for the
#                  explicit timing), seed 1, 10 epochs
# --options JSON   dmf_train options merged over {"feedback": "implicit", "seed": <seed>,
#                  "validation": <the validation hold-out>}
# --out DIR        output directory (default test/bench/results/implicit-<timestamp>)
#
# Server and environment as for bench.sh (DMF_USE_EXISTING=1 or PG* variables: that
# server; else a throwaway cluster). DMF_BENCH_BPR_OPTIONS overrides BPR's settings (chosen
# on seed 1's validation hold-out of MovieLens-1M, docs/bench/implicit.md). Objects go to
# schema dmf_implicit, dropped and recreated at the start.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/../.." && pwd)
# shellcheck source=test/bench/ratings_file.sh
source "$BENCH_DIR/ratings_file.sh"

log() { printf '[implicit %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
# seconds since $1 (a `date +%s.%N`), with awk: nothing installs bc
seconds_since() { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.3f", t1 - t0 }'; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

data=${DMF_BENCH_DATA:-}
seeds=1,2,3,4,5
seeds_given=0
quick=0
user_options='{}'
out=
bpr_options=${DMF_BENCH_BPR_OPTIONS:---dim 64 --lr 0.01 --reg 0.005 --epochs 300}
while (($#)); do
    case $1 in
        --data) data=${2:?--data needs a path}; shift 2 ;;
        --seeds) seeds=${2:?--seeds needs a list}; seeds_given=1; shift 2 ;;
        --quick) quick=1; shift ;;
        --options) user_options=${2:?--options needs JSON}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
if ((quick)); then
    ((seeds_given)) || seeds=1
    # the tiny data set takes a larger step (few SGD steps per epoch)
    bpr_options=${DMF_BENCH_BPR_OPTIONS:---dim 64 --lr 0.05 --reg 0.0025 --epochs 300}
    data=
    user_options=$(python3 -c 'import json,sys; o={"epochs": 10}; o.update(json.loads(sys.argv[1])); print(json.dumps(o))' "$user_options")
else
    if [[ -z $data ]]; then
        candidate=$ROOT/../shared/data/ml-1m/ratings.csv
        [[ -f $candidate ]] && data=$candidate
        [[ -n $data ]] || die "no ratings file: pass --data PATH or set DMF_BENCH_DATA, or use --quick"
    fi
    [[ -f $data && -r $data ]] || die "cannot read ratings file $data"
fi
[[ $seeds =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--seeds must be a comma-separated list of integers: $seeds"
IFS=, read -r -a seed_list <<<"$seeds"
[[ -n $out ]] || out=$BENCH_DIR/results/implicit-$(date +%Y%m%d-%H%M%S)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dmf-implicit.XXXXXX")

source "$BENCH_DIR/server.sh"
q -c 'SELECT 1' >/dev/null || die "cannot connect to the server"
q -c 'SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS dmf' >/dev/null
mkdir -p "$out"
out=$(cd "$out" && pwd)

gcc -std=gnu99 -O2 -o "$tmp/implicit_baselines" "$BENCH_DIR/implicit_baselines.c" -lm ||
    die "could not build test/bench/implicit_baselines.c"

q <<'SQL'
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS dmf_implicit CASCADE;
CREATE SCHEMA dmf_implicit;
CREATE TABLE dmf_implicit.raw (user_id bigint, item_id bigint, rating float8, ts bigint);
CREATE TABLE dmf_implicit.models (name text PRIMARY KEY, model bytea);
SQL
if ((quick)); then
    log "generating interactions: 400 users x 240 items, 4 tastes"
    q <<'SQL'
INSERT INTO dmf_implicit.raw (user_id, item_id, rating)
SELECT u, i, 1 + (u * 7 + i * 3) % 5
FROM (SELECT DISTINCT u, CASE WHEN j < 21 THEN (u % 4) + 4 * ((u * 7 + j * 13) % 60)
                              ELSE ((u + 1 + j) % 4) + 4 * ((u * 11 + j * 17) % 60) END AS i
      FROM generate_series(1, 400) u, generate_series(0, 23) j) d;
SQL
else
    log "loading $data"
    dmf_bench_copy_ratings "$data" dmf_implicit.raw
fi

cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
    echo "## dmf implicit-feedback benchmark"
    echo
    if ((quick)); then echo "- data: generated (--quick)"; else echo "- data: $(basename "$(dirname "$data")")/$(basename "$data"), ratings dropped"; fi
    echo "- seeds: $seeds; dmf_train options: {\"feedback\": \"implicit\", \"seed\": <seed>, \"validation\": <the validation hold-out>} + $user_options"
    echo "- BPR-MF: test/bench/implicit_baselines.c, one thread: $bpr_options, early stopping on validation NDCG@10 (patience 10)"
    echo "- CPU: $cpu; cores: $(nproc); PostgreSQL $(q -c 'SHOW server_version'); dmf $(q -c "SELECT extversion FROM pg_extension WHERE extname = 'dmf'")"
    echo
} >"$out/report.md"
echo "seed,method,val_hr10,val_ndcg10,test_hr10,test_ndcg10,full_hit_rate,full_precision,full_recall,full_ndcg,full_map,seconds,epochs" >"$out/metrics.csv"

# sampled HR@10 and NDCG@10 of a dmf model on split KIND (val or test)
dmf_sampled() {
    q -F, -v name="$1" -v kind="$2" <<'SQL'
WITH m AS (SELECT model FROM dmf_implicit.models WHERE name = :'name'),
pos AS (SELECT h.user_id, h.item_id, dmf_predict(m.model, h.user_id, h.item_id) AS s
        FROM dmf_implicit.heldout h, m WHERE h.kind = :'kind'),
-- users whose held-out item the model does not know are left out, as in
-- implicit_baselines.c; a tie goes to the lower item id, as in dmf_recommend
rk AS (SELECT p.user_id,
              1 + count(*) FILTER (WHERE x.score > p.s OR (x.score = p.s AND x.item_id < p.item_id)) AS rank
       FROM pos p
       JOIN dmf_implicit.negatives n ON n.user_id = p.user_id AND n.kind = :'kind'
       CROSS JOIN m
       CROSS JOIN LATERAL (SELECT n.item_id, dmf_predict(m.model, n.user_id, n.item_id) AS score) x
       WHERE p.s IS NOT NULL
       GROUP BY p.user_id, p.s)
SELECT round(avg((rank <= 10)::int), 4), round(avg(CASE WHEN rank <= 10 THEN 1 / log(2, rank + 1) ELSE 0 END), 4)
FROM rk;
SQL
}

first=1
for seed in "${seed_list[@]}"; do
    log "seed $seed: splitting and sampling the 99 negatives per user"
    q -v seed="$seed" <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS dmf_implicit.ranked, dmf_implicit.heldout, dmf_implicit.negatives, dmf_implicit.train CASCADE;
CREATE TABLE dmf_implicit.ranked AS
SELECT user_id, item_id,
       row_number() OVER (PARTITION BY user_id ORDER BY hashtext(:'seed' || ':' || user_id || ':' || item_id), item_id) AS r
FROM (SELECT DISTINCT user_id, item_id FROM dmf_implicit.raw) d;
CREATE TABLE dmf_implicit.heldout AS
SELECT user_id, item_id, CASE r WHEN 1 THEN 'test' ELSE 'val' END AS kind
FROM dmf_implicit.ranked WHERE r <= 2;
CREATE TABLE dmf_implicit.train AS SELECT user_id, item_id FROM dmf_implicit.ranked WHERE r > 2;
CREATE VIEW dmf_implicit.test AS SELECT user_id, item_id FROM dmf_implicit.heldout WHERE kind = 'test';
CREATE VIEW dmf_implicit.val AS SELECT user_id, item_id FROM dmf_implicit.heldout WHERE kind = 'val';
CREATE INDEX ON dmf_implicit.ranked (user_id, item_id);
CREATE TABLE dmf_implicit.negatives AS
SELECT user_id, item_id, kind FROM (
  SELECT u.user_id, i.item_id, k.kind,
         row_number() OVER (PARTITION BY u.user_id, k.kind
                            ORDER BY hashtext(:'seed' || ':' || k.kind || ':' || u.user_id || ':' || i.item_id), i.item_id) AS r
  FROM (SELECT DISTINCT user_id FROM dmf_implicit.ranked) u
  CROSS JOIN (SELECT DISTINCT item_id FROM dmf_implicit.ranked) i
  CROSS JOIN (VALUES ('val'), ('test')) k(kind)
  WHERE NOT EXISTS (SELECT 1 FROM dmf_implicit.ranked x WHERE x.user_id = u.user_id AND x.item_id = i.item_id)
) s WHERE r <= 99;
ANALYZE dmf_implicit.train; ANALYZE dmf_implicit.negatives; ANALYZE dmf_implicit.heldout;
SQL
    q -c "\\copy (SELECT user_id, item_id FROM dmf_implicit.train ORDER BY 1, 2) TO '$tmp/train.tsv'"
    for kind in val test; do
        q -c "\\copy (SELECT user_id, item_id FROM dmf_implicit.heldout WHERE kind = '$kind' ORDER BY 1, 2) TO '$tmp/$kind.tsv'"
        q -c "\\copy (SELECT user_id, item_id FROM dmf_implicit.negatives WHERE kind = '$kind' ORDER BY 1, 2) TO '$tmp/${kind}_neg.tsv'"
    done

    log "seed $seed: popularity and BPR-MF"
    # shellcheck disable=SC2086
    "$tmp/implicit_baselines" "$tmp" $bpr_options --seed "$seed" 2>"$tmp/bpr.log" |
        while IFS=$'\t' read -r method rest; do
            vals=$(tr '\t' '\n' <<<"$rest" | cut -d= -f2 | paste -sd,)
            echo "$seed,$method,$vals"
        done >>"$out/metrics.csv"

    # early stopping on the validation hold-out, as BPR's
    options=$(python3 -c 'import json,sys; o={"feedback": "implicit", "seed": int(sys.argv[1]), "validation": "dmf_implicit.val"}; o.update(json.loads(sys.argv[2])); print(json.dumps(o))' "$seed" "$user_options")
    log "seed $seed: dmf_train $options"
    t0=$(date +%s.%N)
    q -v o="$options" <<<"INSERT INTO dmf_implicit.models SELECT 'implicit_s$seed', dmf_train('dmf_implicit.train', 'user_id', 'item_id', NULL, :'o')" >/dev/null
    seconds=$(seconds_since "$t0")
    epochs=$(q -c "SELECT dmf_info(model)->>'best_epoch' FROM dmf_implicit.models WHERE name = 'implicit_s$seed'")
    val=$(dmf_sampled "implicit_s$seed" val)
    test=$(dmf_sampled "implicit_s$seed" test)
    full=$(q -F, -c "SELECT round(hit_rate::numeric, 4), round(precision::numeric, 4), round(recall::numeric, 4), round(ndcg::numeric, 4), round(map::numeric, 4)
                    FROM dmf_implicit.models m, dmf_evaluate_ranking(m.model, 'dmf_implicit.test', k => 10) WHERE m.name = 'implicit_s$seed'")
    echo "$seed,dmf,$val,$test,$full,$(printf %.2f "$seconds"),$epochs" >>"$out/metrics.csv"

    if ((first)); then
        first=0
        log "seed $seed: the explicit dmf_train of the same pairs with their ratings, for the time ratio"
        q -c "CREATE TABLE dmf_implicit.train_rated AS SELECT t.user_id, t.item_id, avg(r.rating) AS rating
              FROM dmf_implicit.train t JOIN dmf_implicit.raw r USING (user_id, item_id) GROUP BY 1, 2" >/dev/null
        explicit_options=$(python3 -c 'import json,sys; o={"seed": int(sys.argv[1])}; o.update(json.loads(sys.argv[2])); o.pop("negatives", None); print(json.dumps(o))' "$seed" "$user_options")
        t0=$(date +%s.%N)
        q -v o="$explicit_options" <<<"INSERT INTO dmf_implicit.models SELECT 'explicit_s$seed', dmf_train('dmf_implicit.train_rated', options => :'o')" >/dev/null
        explicit_seconds=$(seconds_since "$t0")
        q -F' ' -c "SELECT 'implicit', dmf_info(i.model)->>'epochs_run', round((dmf_info(i.model)->>'seconds_per_epoch')::numeric, 2),
                           'explicit', dmf_info(e.model)->>'epochs_run', round((dmf_info(e.model)->>'seconds_per_epoch')::numeric, 2)
                    FROM dmf_implicit.models i, dmf_implicit.models e
                    WHERE i.name = 'implicit_s$seed' AND e.name = 'explicit_s$seed'" |
            while read -r _ ie is _ ee es; do
                printf -- '- time on seed %s: implicit dmf_train %.1f s (%s epochs, %s s each), explicit dmf_train of the same pairs %.1f s (%s epochs, %s s each): ratio %.2f\n' \
                    "$seed" "$seconds" "$ie" "$is" "$explicit_seconds" "$ee" "$es" "$(awk -v a="$seconds" -v b="$explicit_seconds" 'BEGIN { print a / b }')"
            done >>"$out/report.md"
    fi
done

python3 - "$out/metrics.csv" >>"$out/report.md" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
cols = ["val_hr10", "val_ndcg10", "test_hr10", "test_ndcg10", "full_hit_rate", "full_precision",
        "full_recall", "full_ndcg", "full_map", "seconds"]
print()
print("| method | " + " | ".join(c.replace("_", " ") for c in cols) + " |")
print("|---|" + "---|" * len(cols))
for method in ["popularity", "bpr", "dmf"]:
    sel = [r for r in rows if r["method"] == method]
    if not sel:
        continue
    cells = []
    for c in cols:
        v = [float(r[c]) for r in sel]
        cells.append(f"{statistics.mean(v):.4f}" + (f" ± {statistics.stdev(v):.4f}" if len(v) > 1 else ""))
    print(f"| {method} | " + " | ".join(cells) + " |")
print()
print("Per seed, test HR@10 / NDCG@10 (sampled):")
print()
for s in sorted({r["seed"] for r in rows}, key=int):
    line = [f"{r['method']} {float(r['test_hr10']):.4f} / {float(r['test_ndcg10']):.4f}"
            for r in rows if r["seed"] == s]
    print(f"- seed {s}: " + ", ".join(line))
PY
cat "$out/report.md"
