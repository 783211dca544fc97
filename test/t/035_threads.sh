#!/usr/bin/env bash
# The model depends on the rows, the options and the seed, never on the
# number of threads: the same small training (explicit and DMF-D on the
# alternating schedule, explicit on blocks, implicit)
# with "threads" 1, 2, 3, 4 and 8 gives the same model, compared exactly:
# every stored factor (text of the float4 values), the predictions of every
# pair, a new user's factor (the branch's weights and fold-in) and dmf_info
# without what measures time or threads: created_at, the seconds, threads_used
# (which must be the count asked for) and the option itself, and what follows
# from the metadata's text (model_id, a digest of the bytes, and size_bytes).
# Then dmf.max_threads caps the option: "threads" 8 under a cap of 3 uses 3,
# and 0 (every core) uses the cores, at most the cap.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$here/../lib/cluster.sh"

dmf_use_server

db=dmf_t_threads
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
cleanup() {
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
}
dmf_at_exit cleanup

fail() {
    echo "FAILED: $*"
    exit 1
}

psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
CREATE EXTENSION dmf;
SET dmf.max_threads = 8;
-- 300 users x 200 items, about a third rated
CREATE TABLE r AS
SELECT u AS user_id, i AS item_id,
       greatest(1, least(5, round(3 + 1.5 * sin(u * 1.3) * cos(i * 0.7) + cos(u * 0.4) * sin(i * 1.1))))::int AS rating
FROM generate_series(1, 300) u, generate_series(1, 200) i
WHERE (u * 31 + i * 17) % 3 = 0;
CREATE TABLE kinds (kind text, options jsonb);
INSERT INTO kinds VALUES
  ('explicit', '{"layers": [96, 48], "dim": 16, "epochs": 4, "batch_size": 2000, "seed": 5, "dropout": 0.2, "input_dropout": 0.1}'),
  ('implicit', '{"feedback": "implicit", "layers": [96], "dim": 16, "epochs": 3, "batch_size": 2000, "seed": 5}'),
  ('discrete', '{"discrete": true, "layers": [96], "dim": 16, "epochs": 3, "batch_size": 2000, "seed": 5}'),
  ('blocks', '{"schedule": "blocks", "layers": [96, 48], "dim": 16, "epochs": 4, "batch_size": 2000, "seed": 5, "dropout": 0.2, "input_dropout": 0.1}');
CREATE TABLE models (kind text, threads int, model bytea);
SQL

for kind in explicit implicit discrete blocks; do
    for threads in 1 2 3 4 8; do
        psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "SET dmf.max_threads = 8" -c "
INSERT INTO models
SELECT kind, $threads, dmf_train('r', options => options || '{\"threads\": $threads}')
FROM kinds WHERE kind = '$kind'"
    done
done

# one line per model: kind, threads, threads_used and digests of what it holds
psql -X -A -t -F ' ' -v ON_ERROR_STOP=1 -d "$db" >"${TMPDIR:-/tmp}/dmf_threads.$$" <<'SQL'
SELECT m.kind, m.threads, dmf_info(m.model)->>'threads_used',
       md5((SELECT string_agg(dmf_user_factor(m.model, u)::text, ';' ORDER BY u)
            FROM generate_series(1, 300) u)),
       md5((SELECT string_agg(dmf_item_factor(m.model, i)::text, ';' ORDER BY i)
            FROM generate_series(1, 200) i)),
       md5((SELECT string_agg(dmf_predict(m.model, u, i)::text, ';' ORDER BY u, i)
            FROM generate_series(1, 300, 7) u, generate_series(1, 200, 3) i)),
       md5((SELECT dmf_user_factor(m.model, item_id, rating)::text
            FROM (SELECT item_id, rating FROM r WHERE user_id = 17 ORDER BY item_id) n)),
       md5(CASE WHEN m.kind = 'discrete' THEN
            (SELECT string_agg(dmf_predict_discrete(m.model, u, i)::text, ';' ORDER BY u, i)
             FROM generate_series(1, 300, 7) u, generate_series(1, 200, 3) i) ELSE '' END),
       md5((((dmf_info(m.model) #- '{options,threads}'::text[]) - 'created_at' - 'threads_used'
             - 'load_seconds' - 'training_seconds' - 'finish_seconds' - 'seconds_per_epoch'
             - 'model_id' - 'size_bytes')
            || jsonb_build_object('history',
                 (SELECT jsonb_agg(h - 'seconds') FROM jsonb_array_elements(dmf_info(m.model)->'history') h)))::text)
FROM models m ORDER BY m.kind, m.threads;
SQL
out="${TMPDIR:-/tmp}/dmf_threads.$$"
dmf_at_exit 'rm -f "$out"'
cat "$out"

while read -r kind threads used rest; do
    [[ "$used" == "$threads" ]] || fail "$kind, threads $threads: threads_used is $used"
done <"$out"
for kind in explicit implicit discrete blocks; do
    n=$(awk -v k="$kind" '$1 == k { $2 = ""; $3 = ""; print }' "$out" | sort -u | wc -l)
    ((n == 1)) || fail "$kind: the models trained with 1, 2, 3, 4 and 8 threads differ"
    echo "$kind: the same model with 1, 2, 3, 4 and 8 threads"
done

cores=$(nproc)
capped=$(psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$db" -c "SET dmf.max_threads = 3" -c "
SELECT (dmf_info(dmf_train('r', options => options || '{\"threads\": 8}'))->>'threads_used') || ' ' ||
       (dmf_info(dmf_train('r', options => options || '{\"threads\": 0}'))->>'threads_used')
FROM kinds WHERE kind = 'implicit'")
want_all=$((cores < 3 ? cores : 3))
[[ "$capped" == "3 $want_all" ]] ||
    fail "under dmf.max_threads = 3, \"threads\" 8 and 0 used $capped threads, not 3 and $want_all ($cores cores)"
echo "dmf.max_threads = 3: \"threads\" 8 uses 3, 0 uses $want_all of $cores cores"
echo "ok"
