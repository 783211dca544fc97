#!/usr/bin/env bash
# dmf can be cancelled: statement_timeout and pg_cancel_backend stop a
# long dmf_train, and every loop whose length grows with the input, within
# about a second with SQLSTATE 57014; the session goes on,
# and the memory the training used is given back.
#
#   (a) SET statement_timeout = '1s'; dmf_train(...) on a training that would
#       run for hours: 57014, and the statement ends soon after the timeout
#   (b) pg_cancel_backend from a second session, found by application_name:
#       the training session gets 57014 soon after the cancel
#       and while it runs, every thread dmf started in that backend (its
#       team's helper threads, OpenBLAS's pool) has the signals PostgreSQL handles
#       blocked: a cancel or a timeout must be handled on the backend's own
#       thread, never on one of them
#   (c) after (b), in the same session: the next statements work (including
#       a small training), no 'dmf training' memory context is left and the
#       backend's memory (pg_backend_memory_contexts) is what it was before
#
# Then pg_cancel_backend stops each loop whose length grows with the input,
# the statement in a session of its own, cancelled while the loop runs:
#   (d) dmf_train reading ratings with a popular item (300,000 ratings of
#       each of 2 items, in random order): the item rows are sorted by user
#       as they are built
#   (e) dmf_item_factor over that popular item: its one row of 300,000
#       ratings is sorted, then folded in
#   (f) dmf_refresh adding 4 users who rated every one of 3,000 items, to a
#       model with "fold_in_steps": 10000 and "dim": 512: their fold-in
#   (g) dmf_train on those ratings with those options, once its epochs are
#       over: the fold-in of every row that chooses which sides to fold in
#   (h) dmf_explain for one of those users: a fold-in of the row without
#       each rating in turn
#   (i) dmf_evaluate over 6 million rows
# Before the rows were sorted in O(n log n) and fold-in checked inside a row,
# a cancel took 24 s to stop (d), 13 s (e), 31 s (f), 105 s (g) and 11 s (h)
# on 2 cores; (i) always stopped at once.
#
# Latencies are measured with the server's clock and printed.  The bounds are
# generous so a slow or busy machine does not fail the test:
#   DMF_CANCEL_MAX_SECONDS   most seconds from the timeout or the cancel to the
#                            error (default 2)
#   DMF_CANCEL_MAX_GROWTH    most bytes the backend may keep (default 1 MB)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$here/../lib/cluster.sh"

dmf_use_server

max_latency=${DMF_CANCEL_MAX_SECONDS:-2}
max_growth=${DMF_CANCEL_MAX_GROWTH:-1048576}
admin_db=${PGDATABASE:-postgres}
db="dmf_t030_$$"
app="dmf_t030_train_$$"
work="$(mktemp -d)"
bg_pid=""
cleanup() {
    if [[ -n "$bg_pid" ]]; then
        kill "$bg_pid" 2>/dev/null || true
        wait "$bg_pid" 2>/dev/null || true
    fi
    # FORCE also ends a training backend left behind by a failure
    psql -X -q -d "$admin_db" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
dmf_at_exit cleanup

fail() {
    echo "FAILED: $*"
    exit 1
}

# A long training: 20000 users x 2000 items, 40 ratings per user (2%),
# layers [512]: about 15 s per epoch on 2 cores, and 1000 epochs.
# four threads: the training's team has three helpers, OpenBLAS's pool three
big_options='{"layers": [512], "epochs": 1000, "seed": 1, "threads": 4}'

psql -X -q -v ON_ERROR_STOP=1 -d "$admin_db" -c "CREATE DATABASE $db"
echo "== generating 800000 ratings (20000 users x 2000 items) and a small table"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
CREATE EXTENSION IF NOT EXISTS dmf;
CREATE TABLE big AS
SELECT u::bigint AS user_id, (1 + (u * 37 + k * 53) % 2000)::bigint AS item_id,
       (1 + ((u % 7) * (k % 5) + u / 1000 + k) % 5)::float8 AS rating
FROM generate_series(1, 20000) u, generate_series(1, 40) k;
CREATE TABLE small AS
SELECT u::bigint AS user_id, i::bigint AS item_id, (1 + (u * 7 + i * 3) % 5)::float8 AS rating
FROM generate_series(1, 60) u, generate_series(1, 40) i WHERE (u + i) % 3 = 0;
ANALYZE big;
ANALYZE small;
SQL

# value KEY FILE: the value of a "RESULT KEY=value" line
value() {
    sed -n "s/^RESULT $1=//p" "$2" | tail -n 1
}
# awk-checked comparisons of decimal numbers
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

echo
echo "== (a) statement_timeout = 1s"
psql -X -q -A -t -d "$db" -v big_options="$big_options" >"$work/a.out" 2>&1 <<'SQL' || true
\set VERBOSITY terse
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SET statement_timeout = '1s';
SELECT length(dmf_train('big', options => :'big_options'));
\echo RESULT sqlstate=:LAST_ERROR_SQLSTATE
RESET statement_timeout;
SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 3) AS elapsed \gset
\echo RESULT elapsed=:elapsed
SQL
sed 's/^/    /' "$work/a.out"
a_state=$(value sqlstate "$work/a.out")
a_elapsed=$(value elapsed "$work/a.out")
[[ "$a_state" == 57014 ]] || fail "(a) expected SQLSTATE 57014, got '${a_state}'"
[[ -n "$a_elapsed" ]] || fail "(a) no elapsed time"
a_latency=$(awk -v e="$a_elapsed" 'BEGIN { printf "%.3f", e - 1 }')
echo "(a) dmf_train ended with 57014 after $a_elapsed s: $a_latency s after the 1 s timeout"
le "$a_latency" "$max_latency" || fail "(a) the timeout took $a_latency s to stop the training (limit $max_latency s)"

echo
echo "== (b) pg_cancel_backend from another session, (c) the session afterwards"
# The training session runs in the background; its output goes to a file.
psql -X -q -A -t -d "$db" -v big_options="$big_options" -v app="$app" >"$work/b.out" 2>&1 <<'SQL' &
\set VERBOSITY terse
SET application_name = :'app';
-- warm up: load the library, the caches, OpenBLAS, the big table's relcache
SELECT length(dmf_train('small', options => '{"layers": [8], "dim": 4, "epochs": 2}')) > 0 AS warm \gset
SELECT count(*) AS n_big FROM big \gset
SELECT sum(total_bytes) AS m0, count(*) AS c0 FROM pg_backend_memory_contexts \gset
\echo RESULT m0=:m0
\echo RESULT contexts0=:c0
\echo RESULT training=started
SELECT length(dmf_train('big', options => :'big_options'));
\echo RESULT sqlstate=:LAST_ERROR_SQLSTATE
SELECT extract(epoch FROM clock_timestamp()) AS t_back \gset
\echo RESULT t_back=:t_back
SELECT sum(total_bytes) AS m1, count(*) AS c1 FROM pg_backend_memory_contexts \gset
\echo RESULT m1=:m1
\echo RESULT contexts1=:c1
SELECT count(*) AS left_over FROM pg_backend_memory_contexts WHERE name LIKE 'dmf training%' \gset
\echo RESULT left_over=:left_over
SELECT 41 + 1 AS next_ok \gset
\echo RESULT next=:next_ok
SELECT dmf_predict(dmf_train('small', options => '{"layers": [8], "dim": 4, "epochs": 2}'), 1, 2) IS NOT NULL AS trained \gset
\echo RESULT small_training=:trained
SQL
bg_pid=$!

# Wait for the big training to be running for a while: past loading the
# ratings and setting up (about 2 s here), into the epochs.  (a) ended about
# when the setup did if the timeout fell into it, so a slow machine waits
# longer: twice (a)'s time, at least 3 s, at most 30 s.
wait_for=$(awk -v e="$a_elapsed" 'BEGIN { w = 2 * e; if (w < 3) w = 3; if (w > 30) w = 30; printf "%.1f", w }')
running_for=""
train_pid=""
for _ in $(seq 1 600); do
    row=$(psql -X -q -A -t -F ' ' -d "$db" -c "
        SELECT pid, extract(epoch FROM clock_timestamp() - query_start)
        FROM pg_stat_activity
        WHERE application_name = '$app' AND state = 'active' AND query LIKE '%dmf_train(''big''%'" || true)
    if [[ -n "$row" ]]; then
        read -r train_pid running_for <<<"$row"
        le "$wait_for" "$running_for" && break
    fi
    kill -0 "$bg_pid" 2>/dev/null || { cat "$work/b.out"; fail "(b) the training session ended early"; }
    sleep 0.1
done
[[ -n "$running_for" ]] || { cat "$work/b.out"; fail "(b) the training never showed up in pg_stat_activity"; }

# Signals PostgreSQL's backends handle: SIGHUP 1, SIGINT 2, SIGQUIT 3,
# SIGUSR1 10, SIGUSR2 12, SIGALRM 14, SIGTERM 15.  SigBlk is a hex mask,
# bit (signal - 1).
handled_mask=$(( (1 << 0) | (1 << 1) | (1 << 2) | (1 << 9) | (1 << 11) | (1 << 13) | (1 << 14) ))
threads_seen=0
for task in /proc/"$train_pid"/task/*; do
    tid=${task##*/}
    [[ "$tid" == "$train_pid" ]] && continue
    blocked=$(sed -n 's/^SigBlk:[[:space:]]*//p' "$task/status" 2>/dev/null || true)
    [[ -n "$blocked" ]] || continue     # the thread ended meanwhile
    threads_seen=$((threads_seen + 1))
    if (( (16#$blocked & handled_mask) != handled_mask )); then
        fail "(b) thread $tid of the training backend has signals unblocked (SigBlk $blocked): it could run the backend's signal handlers"
    fi
done
((threads_seen >= 4)) || fail "(b) expected the team's three helper threads and OpenBLAS's pool, saw $threads_seen threads besides the backend's"
echo "(b) $threads_seen threads besides the backend's, each with the backend's signals blocked"

cancel=$(psql -X -q -A -t -F ' ' -d "$db" -c "
    SELECT pg_cancel_backend($train_pid), extract(epoch FROM clock_timestamp())")
read -r cancelled t_cancel <<<"$cancel"
[[ "$cancelled" == t ]] || fail "(b) pg_cancel_backend($train_pid) failed: $cancel"
echo "(b) cancelled backend $train_pid after $(printf '%.1f' "$running_for") s of training"

# The session must come back by itself; give it far more than the limit.
for _ in $(seq 1 600); do
    kill -0 "$bg_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$bg_pid" 2>/dev/null; then
    cat "$work/b.out"
    fail "(b) the training session did not finish within 60 s of the cancel"
fi
wait "$bg_pid" || true
bg_pid=""
sed 's/^/    /' "$work/b.out"

b_state=$(value sqlstate "$work/b.out")
t_back=$(value t_back "$work/b.out")
[[ "$b_state" == 57014 ]] || fail "(b) expected SQLSTATE 57014, got '${b_state}'"
[[ -n "$t_back" ]] || fail "(b) the session did not report when it got the error"
b_latency=$(awk -v a="$t_back" -v b="$t_cancel" 'BEGIN { printf "%.3f", a - b }')
echo "(b) the training session got 57014 $b_latency s after pg_cancel_backend"
le "$b_latency" "$max_latency" || fail "(b) the cancel took $b_latency s (limit $max_latency s)"

m0=$(value m0 "$work/b.out")
m1=$(value m1 "$work/b.out")
[[ -n "$m0" && -n "$m1" ]] || fail "(c) no memory figures"
growth=$((m1 - m0))
echo "(c) backend memory: $m0 bytes before the training, $m1 after the cancel ($growth bytes kept;" \
    "contexts $(value contexts0 "$work/b.out") -> $(value contexts1 "$work/b.out"))"
((growth <= max_growth)) || fail "(c) the backend kept $growth bytes after the cancel (limit $max_growth)"
[[ "$(value left_over "$work/b.out")" == 0 ]] || fail "(c) a 'dmf training' memory context is left"
echo "(c) no 'dmf training' memory context is left"
[[ "$(value next "$work/b.out")" == 42 ]] || fail "(c) the next statement did not work"
[[ "$(value small_training "$work/b.out")" == t ]] || fail "(c) a small training after the cancel did not work"
echo "(c) the next statement and a new training work in the same session"

echo
echo "== generating the inputs of (d) to (i)"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
-- a popular item: 2 items each rated by 300,000 users, in random order
CREATE TABLE pop AS
SELECT u::bigint AS user_id, i::bigint AS item_id, (1 + (u * 7 + i) % 5)::float8 AS rating
FROM generate_series(1, 300000) u, generate_series(1, 2) i ORDER BY random();
-- the same rows in user order, for a model of them (rows come sorted: quick to build)
CREATE TABLE pop_sorted AS SELECT * FROM pop ORDER BY user_id, item_id;
CREATE TABLE pop_model AS
SELECT dmf_train('pop_sorted', options => '{"epochs": 1, "dim": 4, "layers": [4], "fold_in_steps": 3000,
    "fold_in_training": "none", "validation_fraction": 0}') AS m;
CREATE VIEW pop_times_20 AS SELECT p.* FROM pop p, generate_series(1, 20);
-- 400 users with 50 ratings each over 3,000 items, and 4 who rated every item
CREATE TABLE heavy_base AS
SELECT (1000 + u)::bigint AS user_id, (1 + (u * 37 + k * 53) % 3000)::bigint AS item_id,
       (1 + (u * 7 + k * 3) % 5)::float8 AS rating
FROM generate_series(1, 400) u, generate_series(1, 50) k;
CREATE TABLE heavy_users AS
SELECT u::bigint AS user_id, i::bigint AS item_id, (1 + (u * 7 + i * 3) % 5)::float8 AS rating
FROM generate_series(1, 4) u, generate_series(1, 3000) i;
CREATE VIEW heavy_all AS SELECT * FROM heavy_base UNION ALL SELECT * FROM heavy_users;
CREATE TABLE heavy_model AS
SELECT dmf_train('heavy_base', options => '{"epochs": 2, "dim": 512, "layers": [64], "fold_in_steps": 10000,
    "fold_in_training": "none", "validation_fraction": 0}') AS m;
ANALYZE;
SQL

# cancel_during LABEL WHAT WAIT SQL [NOTICE]: runs SQL in a session of its
# own; once it has run WAIT seconds (with NOTICE: WAIT seconds after that
# text appeared in its output) cancels it, and checks that it ends with
# 57014 within the limit.
cancel_during() {
    local label=$1 what=$2 wait=$3 sql=$4 notice=${5:-}
    local app="dmf_t030_${label}_$$" out="$work/$label.out"
    local row pid="" running_for="" seen_at="" t_cancel cancelled state back latency

    echo
    echo "== ($label) $what"
    psql -X -q -A -t -d "$db" -v app="$app" >"$out" 2>&1 <<SQL &
\set VERBOSITY terse
SET application_name = :'app';
$sql
\echo RESULT sqlstate=:LAST_ERROR_SQLSTATE
SELECT extract(epoch FROM clock_timestamp()) AS t_back \gset
\echo RESULT t_back=:t_back
SQL
    bg_pid=$!
    for _ in $(seq 1 1200); do
        row=$(psql -X -q -A -t -F ' ' -d "$db" -c "
            SELECT pid, extract(epoch FROM clock_timestamp() - query_start)
            FROM pg_stat_activity
            WHERE application_name = '$app' AND state = 'active' AND query NOT LIKE 'SET %'" || true)
        if [[ -n "$row" ]]; then
            read -r pid running_for <<<"$row"
            if [[ -n "$notice" ]]; then
                if [[ -z "$seen_at" ]] && grep -qF -- "$notice" "$out"; then
                    seen_at=$running_for
                fi
                [[ -n "$seen_at" ]] && le "$(awk -v s="$seen_at" -v w="$wait" 'BEGIN { print s + w }')" "$running_for" && break
            else
                le "$wait" "$running_for" && break
            fi
        fi
        kill -0 "$bg_pid" 2>/dev/null || { cat "$out"; fail "($label) the statement ended before the cancel"; }
        sleep 0.1
    done
    [[ -n "$pid" ]] || { cat "$out"; fail "($label) the statement never showed up in pg_stat_activity"; }
    [[ -z "$notice" || -n "$seen_at" ]] || { cat "$out"; fail "($label) no '$notice' in the output"; }

    read -r cancelled t_cancel <<<"$(psql -X -q -A -t -F ' ' -d "$db" -c "
        SELECT pg_cancel_backend($pid), extract(epoch FROM clock_timestamp())")"
    [[ "$cancelled" == t ]] || fail "($label) pg_cancel_backend($pid) failed"
    echo "($label) cancelled after $(printf '%.1f' "$running_for") s"
    # the session must come back by itself; give it far more than the limit
    for _ in $(seq 1 1200); do
        kill -0 "$bg_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$bg_pid" 2>/dev/null; then
        cat "$out"
        fail "($label) the session did not finish within 120 s of the cancel"
    fi
    wait "$bg_pid" || true
    bg_pid=""
    state=$(value sqlstate "$out")
    back=$(value t_back "$out")
    if [[ "$state" != 57014 ]]; then
        cat "$out"
        fail "($label) expected SQLSTATE 57014, got '${state}'"
    fi
    [[ -n "$back" ]] || { cat "$out"; fail "($label) the session did not report when it got the error"; }
    latency=$(awk -v a="$back" -v b="$t_cancel" 'BEGIN { printf "%.3f", a - b }')
    echo "($label) 57014 $latency s after pg_cancel_backend"
    le "$latency" "$max_latency" || fail "($label) the cancel took $latency s (limit $max_latency s)"
}

cancel_during d "dmf_train reading ratings with a popular item" 4 \
    "SELECT length(dmf_train('pop', options => '{\"epochs\": 1000, \"dim\": 4, \"layers\": [4]}'));"
cancel_during e "dmf_item_factor over the 300,000 ratings of one item" 2 \
    "SELECT array_length(dmf_item_factor(m, user_id, rating), 1) FROM pop, pop_model WHERE item_id = 1;"
cancel_during f "dmf_refresh folding in users who rated 3,000 items" 2 \
    "SELECT length(dmf_refresh(m, 'heavy_all')) FROM heavy_model;"
cancel_during g "dmf_train folding in every row after its epochs" 1 \
    "SELECT length(dmf_train('heavy_all', options => '{\"epochs\": 2, \"dim\": 512, \"layers\": [64],
        \"fold_in_steps\": 10000, \"fold_in_training\": \"none\", \"verbose\": true}'));" \
    "epoch 2/2"
cancel_during h "dmf_explain for a user who rated 3,000 items" 1 \
    "SELECT count(*) FROM heavy_model, dmf_explain(m, 1, 7, 3, ratings => 'heavy_all');"
cancel_during i "dmf_evaluate over 6 million rows" 2 \
    "SELECT n FROM pop_model, dmf_evaluate(m, 'pop_times_20');"
echo "ok"
