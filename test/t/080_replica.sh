#!/usr/bin/env bash
# Read scale-out on a streaming hot standby: a model is a row, so it reaches
# the standby by WAL like any other, and the standby answers from it exactly
# as the primary does, also in a session that had the previous model cached.
#
# Starts two clusters of its own (test/lib/replication.sh, ports from 54900;
# not test/check.sh's server): a primary, and a hot standby made by
# pg_basebackup -R that streams from it over the unix socket.
#   (1) a model trained on the primary (300 users x 200 items, about 12,000
#       generated ratings, fixed seed), once replayed, gives on the standby
#       exactly the primary's answers: dmf_predict for every (user, item)
#       pair, dmf_recommend for some users, dmf_user_factor and
#       dmf_item_factor of everyone, dmf_info, the exported factors, similar
#       items and users, targeted users, popular items, candidates, cold
#       start, explanations, discrete predictions, dmf_score, the factor
#       aggregate and a dmf_refresh run on each node (compared as text, so
#       to the last bit).  A training run on the standby (read only) gives the
#       model the primary's training gives.
#   (2) a standby session that has the model cached (it predicted and
#       recommended with it) sees, after the primary replaced the model
#       (UPDATE ... dmf_train with another seed) and the standby replayed the
#       change, the new model's answers, the primary's, in the same backend;
#       they differ from the old model's.
#   (3) pgbench with 2 clients, dmf_predict on random ids against the
#       standby, DMF_REPLICA_SECONDS (12) with the primary idle, then as
#       long again while the primary retrains and replaces the model in a
#       loop: no failed transaction, no recovery conflict, pgbench exits 0.
#       Both tps figures are printed, with the replay lags seen after each
#       swap (milliseconds from the UPDATE's return to the standby having
#       replayed it; what the measure costs by itself is printed too).
#       The standby keeps PostgreSQL's defaults for conflicts with queries
#       (hot_standby_feedback off, max_standby_streaming_delay 30 s): short
#       prediction queries need nothing more.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$here/../lib/cluster.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/replication.sh
source "$here/../lib/replication.sh"

seconds=${DMF_REPLICA_SECONDS:-12}
options='{"layers": [64], "dim": 16, "epochs": 40, "batch_size": 256, "threads": 1}'

work="$(mktemp -d)"
retrainer=""
pgbench_pid=""
# registered before the nodes' hook, so it runs first
cleanup() {
    local pid
    for pid in "$retrainer" "$pgbench_pid"; do
        if [[ -n "$pid" ]]; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$work"
}
dmf_at_exit cleanup

fail() {
    echo "FAILED: $*"
    dmf_nodes_log_tail 20
    exit 1
}

dmf_install_deps
version="$(dmf_nodes_need_dmf)" || fail "dmf is not installed"
pgbench="$("$(dmf_pg_config)" --bindir)/pgbench"
[[ -x "$pgbench" ]] || fail "no pgbench in $("$(dmf_pg_config)" --bindir) (package postgresql-15)"
start=$SECONDS

echo "== primary and hot standby (dmf $version)"
dmf_node_start primary "wal_level = replica" "max_wal_senders = 4" "max_replication_slots = 4" \
    "hot_standby = on" "jit = off"
dmf_node_sql primary -v options="$options" <<'SQL'
CREATE EXTENSION dmf;
-- a rank-3 taste plus noise, 1..5 stars, about 20% observed; no random()
CREATE TABLE ratings AS
WITH u AS (SELECT g AS user_id, sin(g * 1.3) AS a, cos(g * 0.7) AS b, sin(g * 0.31) AS c
           FROM generate_series(1, 300) g),
     i AS (SELECT g AS item_id, cos(g * 0.9) AS a, sin(g * 1.7) AS b, cos(g * 0.23) AS c
           FROM generate_series(1, 200) g)
SELECT u.user_id::bigint, i.item_id::bigint,
       greatest(1, least(5, round(3.2 + 1.3 * (u.a * i.a + u.b * i.b + u.c * i.c)
                                  + 0.4 * sin(u.user_id * i.item_id * 0.37))))::float8 AS rating
FROM u, i
WHERE abs(hashtext(u.user_id || ':' || i.item_id)) % 100 < 20;
CREATE TABLE models (name text PRIMARY KEY, model bytea);
-- out of line and uncompressed, as the README stores models
ALTER TABLE models ALTER model SET STORAGE EXTERNAL;
INSERT INTO models SELECT 'm', dmf_train('ratings', options => :'options'::jsonb || '{"seed": 1}');
ANALYZE ratings;
ANALYZE models;
SQL
read -r n_ratings n_users n_items < <(dmf_node_sql primary -F ' ' -c \
    "SELECT count(*), count(DISTINCT user_id), count(DISTINCT item_id) FROM ratings")
[[ "$n_users" == 300 && "$n_items" == 200 ]] || fail "the ratings have $n_users users and $n_items items, not 300 and 200"
echo "$n_ratings ratings of $n_users users and $n_items items; model 'm' trained with seed 1"

dmf_node_standby standby primary "jit = off"
lag_ms="$(dmf_node_wait_replay standby primary)" || fail "the standby did not catch up"
[[ "$(dmf_node_sql standby -c 'SELECT pg_is_in_recovery()')" == t ]] || fail "the standby is not in recovery"
state="$(dmf_node_sql primary -c "SELECT r.state || ', ' || r.sync_state FROM pg_stat_replication r
                                  JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = 'standby'")"
[[ "$state" == "streaming, async" ]] || fail "the standby's replication is '$state', not streaming"
# what the measure of a replay lag costs by itself: waits with nothing to replay
floor_ms=$(for _ in 1 2 3; do dmf_node_wait_replay standby primary; done | sort -n | head -n 1)
echo "standby streaming through slot standby ($state), caught up in $lag_ms ms (a wait with nothing to replay: $floor_ms ms)"

# ---- (1) the standby answers as the primary ----

# answers NODE KIND: one line per answer, in a fixed order
answers() {
    local node=$1 kind=$2 sql
    case $kind in
    predict)
        sql="SELECT u, i, dmf_predict(m.model, u, i) FROM models m, generate_series(1, 300) u, generate_series(1, 200) i
             WHERE m.name = 'm' ORDER BY u, i" ;;
    recommend)
        sql="SELECT u, r.ord, r.item_id, r.score FROM models m, generate_series(1, 300, 23) u,
             LATERAL dmf_recommend(m.model, u, 10) WITH ORDINALITY r(item_id, score, ord)
             WHERE m.name = 'm' ORDER BY u, r.ord" ;;
    user_factor)
        sql="SELECT u, dmf_user_factor(m.model, u) FROM models m, generate_series(1, 300) u WHERE m.name = 'm' ORDER BY u" ;;
    item_factor)
        sql="SELECT i, dmf_item_factor(m.model, i) FROM models m, generate_series(1, 200) i WHERE m.name = 'm' ORDER BY i" ;;
    info)
        sql="SELECT dmf_info(model) FROM models WHERE name = 'm'" ;;
    factors)
        sql="SELECT 'u', f.* FROM models m, dmf_user_factors(m.model) f WHERE m.name = 'm'
             UNION ALL SELECT 'i', f.* FROM models m, dmf_item_factors(m.model) f WHERE m.name = 'm'" ;;
    serving)
        sql="SELECT 'similar', i, s.* FROM models m, generate_series(1, 200, 17) i,
                    LATERAL dmf_similar_items(m.model, i, 5) s WHERE m.name = 'm'
             UNION ALL SELECT 'users', i, s.* FROM models m, generate_series(1, 200, 17) i,
                    LATERAL dmf_recommend_users(m.model, i, 5) s WHERE m.name = 'm'
             UNION ALL SELECT 'popular', 0, p.item_id, p.users FROM models m, dmf_popular_items(m.model, 5) p WHERE m.name = 'm'
             UNION ALL SELECT 'explain', u, e.item_id, e.influence FROM models m, generate_series(1, 300, 37) u,
                    LATERAL dmf_explain(m.model, u, 50, 3, 'ratings') e WHERE m.name = 'm'
             UNION ALL SELECT 'similar users', u, s.* FROM models m, generate_series(1, 300, 37) u,
                    LATERAL dmf_similar_users(m.model, u, 5) s WHERE m.name = 'm'
             UNION ALL SELECT 'candidates', u, r.* FROM models m, generate_series(1, 300, 37) u,
                    LATERAL dmf_recommend(m.model, u, 3, candidates => '{5,10,20,40,80,160}') r WHERE m.name = 'm'
             UNION ALL SELECT 'cold start', 0, r.item_id, 0 FROM models m,
                    LATERAL dmf_recommend(m.model, 99999, 5, cold_start => true) r WHERE m.name = 'm'
             UNION ALL SELECT 'discrete', u, i, dmf_predict_discrete(m.model, u, i) FROM models m,
                    generate_series(1, 300, 13) u, generate_series(1, 200, 11) i WHERE m.name = 'm'
             UNION ALL SELECT 'score', u, 0, dmf_score(m.model, dmf_user_factor(m.model, u), dmf_item_factor(m.model, 7))
                    FROM models m, generate_series(1, 300, 13) u WHERE m.name = 'm'
             UNION ALL SELECT 'aggregate', r.user_id, 0,
                    dmf_score(m.model, dmf_user_factor(m.model, r.item_id, r.rating), dmf_item_factor(m.model, 7))
                    FROM models m, ratings r WHERE m.name = 'm' AND r.user_id % 29 = 0 GROUP BY m.model, r.user_id
             UNION ALL SELECT 'refresh', u, i, dmf_predict(dmf_refresh(m.model, 'ratings'), u, i)
                    FROM models m, (VALUES (1, 1), (150, 99), (300, 200)) p(u, i) WHERE m.name = 'm'" ;;
    esac
    dmf_node_sql "$node" -c "$sql"
}

echo "== (1) the standby answers as the primary"
for kind in predict recommend user_factor item_factor info factors serving; do
    answers primary $kind >"$work/primary.$kind" || fail "$kind on the primary"
    answers standby $kind >"$work/standby.$kind" || fail "$kind on the standby"
    lines=$(wc -l <"$work/primary.$kind")
    # no NULL answer: every id is known, so an empty field is a failure
    if grep -qE '\|$' "$work/primary.$kind"; then
        fail "$kind on the primary gave NULL answers"
    fi
    ((lines > 0)) || fail "$kind: no answers"
    diff -q "$work/primary.$kind" "$work/standby.$kind" >/dev/null ||
        { diff "$work/primary.$kind" "$work/standby.$kind" | head -n 10; fail "$kind differs on the standby"; }
    echo "    $kind: $lines lines, identical"
done
model_id="$(dmf_node_sql standby -c "SELECT dmf_info(model)->>'model_id' FROM models WHERE name = 'm'")"
echo "the standby serves model $model_id"

# dmf_train only reads: it runs on a standby too, and trains the same model
same_training="$(dmf_node_sql standby -v options="$options" <<'SQL'
SELECT bool_and(dmf_predict(m.model, r.user_id, r.item_id) = dmf_predict(s.model, r.user_id, r.item_id))
FROM ratings r, models m,
     (SELECT dmf_train('ratings', options => :'options'::jsonb || '{"seed": 1}') AS model) s
WHERE m.name = 'm';
SQL
)" || fail "training on the standby failed"
[[ "$same_training" == t ]] || fail "a training on the standby predicts otherwise than the primary's"
echo "    a training on the standby (read only) predicts as the primary's, on every rating"

# ---- (2) a session with the model cached sees the replaced model ----

echo "== (2) one standby session, across a model swap on the primary"
probe="SELECT string_agg(format('%s:%s=%s', u, i, dmf_predict(m.model, u, i)), ' ' ORDER BY u, i)
       FROM models m, (VALUES (1, 1), (7, 40), (42, 99), (150, 3), (299, 150), (300, 200)) p(u, i)
       WHERE m.name = 'm';
SELECT string_agg(format('%s=%s', r.item_id, r.score), ' ' ORDER BY r.ord)
FROM models m, LATERAL dmf_recommend(m.model, 7, 5) WITH ORDINALITY r(item_id, score, ord) WHERE m.name = 'm';
SELECT dmf_info(model)->>'model_id' FROM models WHERE name = 'm';"

dmf_session_open cached standby
pid_before="$(dmf_session_query cached "SELECT pg_backend_pid();")" || fail "the standby session"
old_session="$(dmf_session_query cached "$probe")" || fail "the standby session's probe"
old_primary="$(dmf_node_sql primary -c "$probe")"
[[ "$old_session" == "$old_primary" ]] ||
    fail "the standby session answers $old_session, the primary $old_primary"
echo "    backend $pid_before: the old model's answers, as the primary's"

# (psql interpolates :'options' in what it reads, not in -c)
dmf_node_sql primary -v options="$options" <<<"UPDATE models SET model = dmf_train('ratings', options => :'options'::jsonb || '{\"seed\": 2}') WHERE name = 'm'" ||
    fail "retraining on the primary"
swap_lag_ms="$(dmf_node_wait_replay standby primary)" || fail "the standby did not replay the swap"
new_primary="$(dmf_node_sql primary -c "$probe")"
new_session="$(dmf_session_query cached "$probe")" || fail "the standby session's probe after the swap"
pid_after="$(dmf_session_query cached "SELECT pg_backend_pid();")" || fail "the standby session"
[[ "$pid_after" == "$pid_before" ]] || fail "the session's backend changed: $pid_before, then $pid_after"
[[ "$new_primary" != "$old_primary" ]] || fail "the model trained with seed 2 answers as the one with seed 1"
if [[ "$new_session" != "$new_primary" ]]; then
    if [[ "$new_session" == "$old_session" ]]; then
        fail "the standby session still answers with the old model"
    fi
    fail "the standby session answers $new_session, the primary $new_primary"
fi
dmf_session_close cached
echo "    replayed in $swap_lag_ms ms; backend $pid_after (the same): the new model's answers, as the primary's"

# ---- (3) pgbench on the standby, with and without retraining ----

cat >"$work/predict.sql" <<'SQL'
\set u random(1, 300)
\set i random(1, 200)
-- a NULL prediction (an unknown id) is an error: division by zero
SELECT p, 1 / (p IS NOT NULL)::int AS known
FROM (SELECT dmf_predict(model, :u, :i) AS p FROM models WHERE name = 'm') s;
SQL

# run_pgbench LABEL: pgbench on the standby; fails unless it exits 0 with
# every transaction done
run_pgbench() {
    local label=$1 out="$work/pgbench.$1" failed processed
    "$pgbench" -n -c 2 -j 2 -T "$seconds" -f "$work/predict.sql" \
        -h "$(dmf_node_host standby)" -p "$(dmf_node_port standby)" -U postgres postgres \
        >"$out" 2>&1 </dev/null &
    pgbench_pid=$!
    wait "$pgbench_pid" || { pgbench_pid=""; cat "$out"; fail "pgbench ($label) failed"; }
    pgbench_pid=""
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
    processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    [[ "${failed:-0}" == 0 && "${processed:-0}" -gt 0 ]] ||
        { cat "$out"; fail "pgbench ($label): ${processed:-0} transactions, ${failed:-?} failed"; }
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$out")
    echo "    $label: $processed transactions, 0 failed, tps = $tps (2 clients, $seconds s)"
}

echo "== (3) pgbench on the standby: dmf_predict on random ids"
run_pgbench "primary idle"
tps_idle=$tps

# retrain and replace the model in a loop on the primary, each swap its own
# transaction; after each, the milliseconds until the standby replayed it
(
    end=$((SECONDS + seconds))
    n=2
    while ((SECONDS < end)); do
        n=$((n + 1))
        dmf_node_sql primary -v options="$options" -v seed="$n" <<<"UPDATE models
            SET model = dmf_train('ratings', options => :'options'::jsonb || jsonb_build_object('seed', :seed))
            WHERE name = 'm'" || exit 1
        dmf_node_wait_replay standby primary >>"$work/lags" || exit 1
    done
) &
retrainer=$!
run_pgbench "primary retraining"
tps_retraining=$tps
wait "$retrainer" || { retrainer=""; fail "the retraining loop failed"; }
retrainer=""
swaps=$(wc -l <"$work/lags")
((swaps >= 2)) || fail "only $swaps retrainings during the run"
lags=$(sort -n "$work/lags" | awk '{ v[NR] = $1 } END { printf "min %s, median %s, max %s", v[1], v[int((NR + 1) / 2)], v[NR] }')
echo "    $swaps models swapped in; replay lag after each swap (ms): $lags"

# the standby ends with the primary's last model, and had no conflicts
dmf_node_wait_replay standby primary >/dev/null || fail "the standby did not catch up"
last_primary="$(dmf_node_sql primary -c "SELECT dmf_info(model)->>'model_id' FROM models WHERE name = 'm'")"
last_standby="$(dmf_node_sql standby -c "SELECT dmf_info(model)->>'model_id' FROM models WHERE name = 'm'")"
[[ "$last_primary" == "$last_standby" ]] || fail "the standby serves $last_standby, the primary $last_primary"
conflicts="$(dmf_node_sql standby -c "SELECT confl_tablespace + confl_lock + confl_snapshot + confl_bufferpin + confl_deadlock
                                      FROM pg_stat_database_conflicts WHERE datname = 'postgres'")"
[[ "$conflicts" == 0 ]] || fail "$conflicts queries on the standby were cancelled by recovery conflicts"
echo "    the standby serves the primary's last model ($last_standby); no recovery conflict"

echo "summary: tps on the standby $tps_idle with the primary idle, $tps_retraining while it retrained ($swaps swaps; replay lag ms: $lags); catch-up after the base backup $lag_ms ms, after the first swap $swap_lag_ms ms (measuring floor $floor_ms ms); $((SECONDS - start)) s"
echo "ok"
