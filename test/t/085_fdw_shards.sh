#!/usr/bin/env bash
# Ratings sharded across servers with postgres_fdw: dmf_train, dmf_refresh
# and dmf_evaluate read a relation through SPI, so a partitioned table whose
# partitions are foreign tables on other servers is a relation like any
# other.  The rows reach the coordinator in another order than a local
# table's scan gives them, and the README promises that "the same rows (in
# any order), options, seed and thread count give the same model": this
# checks that promise across servers.
#
# Starts three clusters of its own (test/lib/replication.sh, ports from
# 54900; not test/check.sh's server): a coordinator and two shards.  Each
# shard holds the ratings of a range of users (1-150, 151-...) in a table of
# its own, in an order of its own; the coordinator has a table ratings
# PARTITION BY RANGE (user_id) whose two partitions are postgres_fdw foreign
# tables on the shards, and a local table ratings_local of the same rows in
# a third order (the test checks the three scan orders differ and the rows
# are the same).
#   (1) dmf_train on the foreign table and on the local table, same options
#       and seed: the same model, i.e. dmf_predict for every (user, item)
#       pair, dmf_user_factor of every user and dmf_item_factor of every
#       item equal to the last bit (compared as text), and dmf_info equal
#       but for the model id, the timings and size_bytes (which counts the
#       timings' text).  The training times of both are printed.
#   (2) after new users' and new ratings' rows went into both (through the
#       partitioned table into the shards, and locally), dmf_refresh of the
#       model from the foreign table and from the local table: the same
#       predictions, factors and dmf_info (but for the timestamp, timings
#       and size).
#   (3) dmf_evaluate of the refreshed model on both: the same n and covered;
#       the same rmse, mae, rmse_discrete, mae_discrete to the last bit when
#       both relations give the rows in the same order (views with ORDER BY),
#       and within a relative 1e-12 as scanned: dmf_evaluate accumulates the
#       errors in the order the rows arrive, so their rounding depends on it
#       (the README promises order independence for training only).
#   (4) dmf_evaluate_ranking (which reads the users in order) and dmf_explain
#       (which reads one user's rows: a query the coordinator sends to one
#       shard) give the same answers from the foreign table as from the local.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$here/../lib/cluster.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/replication.sh
source "$here/../lib/replication.sh"

options='{"layers": [64], "dim": 16, "epochs": 40, "batch_size": 256, "seed": 3, "threads": 1}'
work="$(mktemp -d)"
dmf_at_exit "rm -rf '$work'"

fail() {
    echo "FAILED: $*"
    dmf_nodes_log_tail 20
    exit 1
}

dmf_install_deps
version="$(dmf_nodes_need_dmf)" || fail "dmf is not installed"
[[ -f "$("$(dmf_pg_config)" --sharedir)/extension/postgres_fdw.control" ]] ||
    fail "postgres_fdw is not installed (package postgresql-15)"
start=$SECONDS

# The generator of every node: a rank-3 taste plus noise, 1..5 stars, about
# 20% of the pairs of users FROM..TO x items 1..200 whose hash lands in
# [LO, HI) of 100; no random(), so each node computes the same rows.
ratings_sql() {
    local from=$1 to=$2 lo=$3 hi=$4
    cat <<SQL
WITH u AS (SELECT g AS user_id, sin(g * 1.3) AS a, cos(g * 0.7) AS b, sin(g * 0.31) AS c
           FROM generate_series($from, $to) g),
     i AS (SELECT g AS item_id, cos(g * 0.9) AS a, sin(g * 1.7) AS b, cos(g * 0.23) AS c
           FROM generate_series(1, 200) g)
SELECT u.user_id::bigint AS user_id, i.item_id::bigint AS item_id,
       greatest(1, least(5, round(3.2 + 1.3 * (u.a * i.a + u.b * i.b + u.c * i.c)
                                  + 0.4 * sin(u.user_id * i.item_id * 0.37))))::float8 AS rating
FROM u, i
WHERE abs(hashtext(u.user_id || ':' || i.item_id)) % 100 >= $lo
  AND abs(hashtext(u.user_id || ':' || i.item_id)) % 100 < $hi
SQL
}

echo "== a coordinator and two shards (dmf $version)"
for node in coord shard1 shard2; do
    dmf_node_start "$node" "jit = off"
done

# each shard: its users' rows, in an order of its own
dmf_node_sql shard1 <<SQL
CREATE TABLE ratings_shard (user_id bigint NOT NULL, item_id bigint NOT NULL, rating float8);
INSERT INTO ratings_shard SELECT * FROM ($(ratings_sql 1 150 0 20)) r ORDER BY item_id DESC, user_id;
ANALYZE ratings_shard;
SQL
dmf_node_sql shard2 <<SQL
CREATE TABLE ratings_shard (user_id bigint NOT NULL, item_id bigint NOT NULL, rating float8);
INSERT INTO ratings_shard SELECT * FROM ($(ratings_sql 151 300 0 20)) r ORDER BY md5(user_id || '/' || item_id);
ANALYZE ratings_shard;
SQL

dmf_node_sql coord \
    -v h1="$(dmf_node_host shard1)" -v p1="$(dmf_node_port shard1)" \
    -v h2="$(dmf_node_host shard2)" -v p2="$(dmf_node_port shard2)" <<SQL
CREATE EXTENSION dmf;
CREATE EXTENSION postgres_fdw;
CREATE SERVER shard1 FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host :'h1', port :'p1', dbname 'postgres');
CREATE SERVER shard2 FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host :'h2', port :'p2', dbname 'postgres');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard1 OPTIONS (user 'postgres');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard2 OPTIONS (user 'postgres');
CREATE TABLE ratings (user_id bigint NOT NULL, item_id bigint NOT NULL, rating float8)
    PARTITION BY RANGE (user_id);
CREATE FOREIGN TABLE ratings_p1 PARTITION OF ratings FOR VALUES FROM (MINVALUE) TO (151)
    SERVER shard1 OPTIONS (table_name 'ratings_shard');
CREATE FOREIGN TABLE ratings_p2 PARTITION OF ratings FOR VALUES FROM (151) TO (MAXVALUE)
    SERVER shard2 OPTIONS (table_name 'ratings_shard');
-- the same rows, local, in a third order
CREATE TABLE ratings_local (user_id bigint NOT NULL, item_id bigint NOT NULL, rating float8);
INSERT INTO ratings_local SELECT * FROM ($(ratings_sql 1 300 0 20)) r ORDER BY hashtext(item_id || '-' || user_id);
ANALYZE ratings_local;
CREATE TABLE models (name text PRIMARY KEY, model bytea);

-- dmf_info without what differs between two trainings of the same model:
-- its id, when it was made, how long things took, and the model's size in
-- bytes, which counts the metadata's text, timings included (their digits
-- vary: 0.0078 or 0.031123456789012345)
CREATE FUNCTION info_sans_times(info jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS \$\$
    SELECT jsonb_object_agg(key, CASE WHEN key = 'history'
                                      THEN (SELECT jsonb_agg(h - 'seconds' ORDER BY n)
                                            FROM jsonb_array_elements(value) WITH ORDINALITY e(h, n))
                                      ELSE value END)
    FROM jsonb_each(info)
    WHERE key NOT IN ('model_id', 'created_at', 'refreshed_at', 'size_bytes') AND key NOT LIKE '%seconds%'
\$\$;
SQL

# the foreign table's rows are the local table's, and arrive in another order
same_rows() {
    dmf_node_sql coord -F ' ' <<'SQL'
SELECT (SELECT count(*) FROM ratings), (SELECT count(*) FROM ratings_local),
       (SELECT md5(string_agg(format('%s,%s,%s', user_id, item_id, rating), ';' ORDER BY user_id, item_id)) FROM ratings)
     = (SELECT md5(string_agg(format('%s,%s,%s', user_id, item_id, rating), ';' ORDER BY user_id, item_id)) FROM ratings_local),
       -- as scanned: no ORDER BY
       (SELECT md5(string_agg(format('%s,%s', user_id, item_id), ';')) FROM ratings)
     <> (SELECT md5(string_agg(format('%s,%s', user_id, item_id), ';')) FROM ratings_local);
SQL
}
read -r n_foreign n_local same differ < <(same_rows)
[[ "$n_foreign" == "$n_local" && "$same" == t ]] ||
    fail "the foreign table has $n_foreign rows, the local one $n_local (same set: $same)"
[[ "$differ" == t ]] || fail "the foreign and the local table scan in the same order: the test would prove nothing"
plan="$(dmf_node_sql coord -c "EXPLAIN (COSTS OFF) SELECT user_id, item_id, rating FROM public.ratings" | tr -s ' ' | paste -sd ';' -)"
[[ "$plan" == *"Foreign Scan on ratings_p1"*"Foreign Scan on ratings_p2"* ]] ||
    fail "the partitioned table is not scanned through its foreign partitions: $plan"
echo "$n_foreign ratings of users 1-300 on the shards (1-150, 151-300) and locally; same rows, other scan orders"
echo "plan of the read: $plan"

# ---- (1) training ----

# train RELATION NAME: train on RELATION into models row NAME
train() {
    dmf_node_sql coord -v rel="$1" -v name="$2" -v options="$options" <<'SQL' >/dev/null
INSERT INTO models SELECT :'name', dmf_train(:'rel', options => :'options');
SQL
}

# timed_training RELATION: a training on RELATION, not kept; prints its wall
# seconds (from here), the seconds it spent reading (dmf_info's
# load_seconds) and training
timed_training() {
    local t0 t1 info
    t0=$(dmf_now_us)
    info="$(dmf_node_sql coord -F ' ' -v rel="$1" -v options="$options" <<'SQL'
SELECT round((i->>'load_seconds')::numeric, 4), round((i->>'training_seconds')::numeric, 3)
FROM (SELECT dmf_info(dmf_train(:'rel', options => :'options')) AS i) s;
SQL
)" || return 1
    t1=$(dmf_now_us)
    echo "$(((t1 - t0) / 1000)) $info"
}

# median_training RELATION: the median of 3 timed trainings, "wall_ms read_s train_s"
median_training() {
    local k
    for k in 1 2 3; do
        timed_training "$1" || return 1
    done | sort -n | sed -n 2p
}

# answers NAME KIND USERS: one line per answer of model NAME, in a fixed order
answers() {
    local name=$1 kind=$2 users=$3 sql
    case $kind in
    predict)
        sql="SELECT u, i, dmf_predict(m.model, u, i) FROM models m, generate_series(1, $users) u, generate_series(1, 200) i
             WHERE m.name = '$name' ORDER BY u, i" ;;
    user_factor)
        sql="SELECT u, dmf_user_factor(m.model, u) FROM models m, generate_series(1, $users) u WHERE m.name = '$name' ORDER BY u" ;;
    item_factor)
        sql="SELECT i, dmf_item_factor(m.model, i) FROM models m, generate_series(1, 200) i WHERE m.name = '$name' ORDER BY i" ;;
    info)
        sql="SELECT jsonb_pretty(info_sans_times(dmf_info(model))) FROM models WHERE name = '$name'" ;;
    esac
    dmf_node_sql coord -c "$sql"
}

# compare A B USERS: models A and B answer alike
compare() {
    local a=$1 b=$2 users=$3 kind lines
    for kind in predict user_factor item_factor info; do
        answers "$a" $kind "$users" >"$work/$a.$kind" || fail "$kind of model $a"
        answers "$b" $kind "$users" >"$work/$b.$kind" || fail "$kind of model $b"
        lines=$(wc -l <"$work/$a.$kind")
        ((lines > 0)) || fail "$kind: no answers"
        if [[ $kind != info ]] && grep -qE '\|$' "$work/$a.$kind"; then
            fail "$kind of model $a has NULL answers"
        fi
        diff -q "$work/$a.$kind" "$work/$b.$kind" >/dev/null || {
            diff "$work/$a.$kind" "$work/$b.$kind" | head -n 20
            echo "$(diff "$work/$a.$kind" "$work/$b.$kind" | grep -c '^<') of $lines lines differ"
            fail "$kind: model $a and model $b differ"
        }
        echo "    $kind: $lines lines, identical"
    done
}

echo "== (1) dmf_train on the foreign table and on the local one: $options"
# warm-up: the foreign connections and dmf's first load are not timed
dmf_node_sql coord -c "SELECT count(*) FROM ratings" -c "SELECT dmf_info(dmf_train('ratings_local', options => '{\"epochs\": 1, \"threads\": 1}'))->'rows'" >/dev/null
train ratings foreign || fail "training on the foreign table"
train ratings_local local || fail "training on the local table"
compare foreign local 300
# the times: medians of 3 more trainings each, one after the other
timings="$(median_training ratings)" || fail "timing the training on the foreign table"
read -r wall_f load_f train_f <<<"$timings"
timings="$(median_training ratings_local)" || fail "timing the training on the local table"
read -r wall_l load_l train_l <<<"$timings"
echo "    time (median of 3): foreign ${wall_f} ms wall, reading ${load_f} s, training ${train_f} s"
echo "                        local   ${wall_l} ms wall, reading ${load_l} s, training ${train_l} s"
# not two names for one value: each training made its own model
[[ "$(dmf_node_sql coord -c "SELECT count(DISTINCT dmf_info(model)->>'model_id') FROM models")" == 2 ]] ||
    fail "the two models have the same id"

# ---- (2) refresh after new rows ----

echo "== (2) new rows in both, then dmf_refresh from the foreign table and from the local one"
# users 301-330 (on shard2, routed there by the coordinator), and about 2%
# more ratings of users 1-300 (on both shards); each table in its own order
dmf_node_sql coord <<SQL
INSERT INTO ratings SELECT * FROM (($(ratings_sql 301 330 0 20)) UNION ALL ($(ratings_sql 1 300 20 22))) r
ORDER BY md5(item_id || ':' || user_id);
INSERT INTO ratings_local SELECT * FROM (($(ratings_sql 301 330 0 20)) UNION ALL ($(ratings_sql 1 300 20 22))) r
ORDER BY user_id DESC, item_id;
SQL
read -r n_foreign n_local same differ < <(same_rows)
[[ "$n_foreign" == "$n_local" && "$same" == t && "$differ" == t ]] ||
    fail "after the inserts: $n_foreign foreign rows, $n_local local (same set: $same, other order: $differ)"
new_on_shard2="$(dmf_node_sql shard2 -c "SELECT count(*) FROM ratings_shard WHERE user_id > 300")"
((new_on_shard2 > 0)) || fail "the new users' rows did not reach shard2"
echo "$n_foreign ratings now ($new_on_shard2 of users 301-330, on shard2)"

dmf_node_sql coord <<'SQL'
INSERT INTO models SELECT 'refreshed_foreign', dmf_refresh(model, 'ratings') FROM models WHERE name = 'foreign';
INSERT INTO models SELECT 'refreshed_local', dmf_refresh(model, 'ratings_local') FROM models WHERE name = 'foreign';
SQL
added="$(dmf_node_sql coord -c "SELECT dmf_info(model)->>'users_added' FROM models WHERE name = 'refreshed_foreign'")"
[[ "$added" == 30 ]] || fail "the refresh added $added users, not 30"
compare refreshed_foreign refreshed_local 330

# ---- (3) evaluation ----

echo "== (3) dmf_evaluate of the refreshed model on the foreign table and on the local one"
# evaluate A B: dmf_evaluate on relations A and B; prints n and covered
# equal (t/f), every figure bit-identical (t/f), the largest relative
# difference of rmse, mae, rmse_discrete and mae_discrete, and A's figures
evaluate() {
    dmf_node_sql coord -F ' ' -v a="$1" -v b="$2" <<'SQL'
WITH a AS (SELECT e.* FROM models m, LATERAL dmf_evaluate(m.model, :'a') e WHERE m.name = 'refreshed_foreign'),
     b AS (SELECT e.* FROM models m, LATERAL dmf_evaluate(m.model, :'b') e WHERE m.name = 'refreshed_foreign')
SELECT a.n = b.n AND a.covered = b.covered,
       (a.rmse, a.mae, a.rmse_discrete, a.mae_discrete) IS NOT DISTINCT FROM (b.rmse, b.mae, b.rmse_discrete, b.mae_discrete),
       greatest(abs(a.rmse - b.rmse) / b.rmse, abs(a.mae - b.mae) / b.mae,
                coalesce(abs(a.rmse_discrete - b.rmse_discrete) / nullif(b.rmse_discrete, 0), 0),
                coalesce(abs(a.mae_discrete - b.mae_discrete) / nullif(b.mae_discrete, 0), 0)),
       format('n %s, covered %s, rmse %s, mae %s, rmse_discrete %s, mae_discrete %s',
              a.n, a.covered, a.rmse, a.mae, a.rmse_discrete, a.mae_discrete)
FROM a, b;
SQL
}
# Rows in the same order (views sorted by user and item): the same numbers,
# to the last bit.
dmf_node_sql coord <<'SQL'
CREATE VIEW ratings_sorted AS SELECT * FROM ratings ORDER BY user_id, item_id;
CREATE VIEW ratings_local_sorted AS SELECT * FROM ratings_local ORDER BY user_id, item_id;
SQL
read -r counts identical reldiff figures < <(evaluate ratings_sorted ratings_local_sorted) ||
    fail "dmf_evaluate"
[[ "$counts" == t ]] || fail "dmf_evaluate counts other rows on the foreign table: $figures"
[[ "$identical" == t ]] || fail "dmf_evaluate, rows in the same order: other figures on the foreign table (relative difference $reldiff)"
echo "    rows in (user, item) order: identical, $figures"
# Rows as scanned (other orders): dmf_evaluate sums the errors in the order
# the rows arrive (src/evaluate.c: a running mean of |error|, a scaled sum of
# squares), so the last bits may differ; nothing else may.
read -r counts identical reldiff figures < <(evaluate ratings ratings_local) || fail "dmf_evaluate"
[[ "$counts" == t ]] || fail "dmf_evaluate counts other rows on the foreign table: $figures"
if [[ "$identical" == t ]]; then
    echo "    rows as scanned: identical"
else
    awk -v d="$reldiff" 'BEGIN { exit !(d < 1e-12) }' ||
        fail "dmf_evaluate, rows as scanned: figures on the foreign table differ by $reldiff (relative)"
    echo "    rows as scanned: n and covered identical; the figures differ in the last bits (relative difference $reldiff), as the order of summation does"
fi

# ---- (4) ranking and explanations through the shards ----

echo "== (4) dmf_evaluate_ranking and dmf_explain on the foreign table and on the local one"
same="$(dmf_node_sql coord <<'SQL'
SELECT (SELECT row(e.*)::text FROM models m, dmf_evaluate_ranking(m.model, 'ratings', k => 5) e WHERE m.name = 'refreshed_foreign')
     = (SELECT row(e.*)::text FROM models m, dmf_evaluate_ranking(m.model, 'ratings_local', k => 5) e WHERE m.name = 'refreshed_foreign')
   AND (SELECT string_agg(format('%s:%s:%s', u, e.item_id, e.influence), ' ' ORDER BY u, e.item_id)
        FROM models m, generate_series(1, 330, 29) u, LATERAL dmf_explain(m.model, u, 17, 3, 'ratings') e
        WHERE m.name = 'refreshed_foreign')
     = (SELECT string_agg(format('%s:%s:%s', u, e.item_id, e.influence), ' ' ORDER BY u, e.item_id)
        FROM models m, generate_series(1, 330, 29) u, LATERAL dmf_explain(m.model, u, 17, 3, 'ratings_local') e
        WHERE m.name = 'refreshed_foreign');
SQL
)" || fail "dmf_evaluate_ranking or dmf_explain on the foreign table"
[[ "$same" == t ]] || fail "dmf_evaluate_ranking or dmf_explain differ between the foreign and the local table"
echo "    the same ranking metrics (users in order, from both shards) and the same explanations (one user's rows from its shard)"

echo "summary: training (median of 3) on the foreign table ${wall_f} ms wall (reading ${load_f} s, training ${train_f} s), on the local one ${wall_l} ms (reading ${load_l} s, training ${train_l} s); same model, same refresh, same evaluation (as scanned: relative difference $reldiff); $((SECONDS - start)) s"
echo "ok"
