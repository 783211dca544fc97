#!/usr/bin/env bash
# Training can be cancelled: statement_timeout and pg_cancel_backend stop a
# long dmf_train within seconds with SQLSTATE 57014, the session goes on,
# and the memory the training used is given back.
#
#   (a) SET statement_timeout = '1s'; dmf_train(...) on a training that would
#       run for hours: 57014, and the statement ends soon after the timeout
#   (b) pg_cancel_backend from a second session, found by application_name:
#       the training session gets 57014 soon after the cancel
#       and while it runs, every thread dmf started in that backend (its
#       helper thread, OpenBLAS's pool) has the signals PostgreSQL handles
#       blocked: a cancel or a timeout must be handled on the backend's own
#       thread, never on one of them
#   (c) after (b), in the same session: the next statements work (including
#       a small training), no 'dmf training' memory context is left and the
#       backend's memory (pg_backend_memory_contexts) is what it was before
#
# Latencies are measured with the server's clock and printed.  The bounds are
# generous so a slow or busy machine does not fail the test:
#   DMF_CANCEL_MAX_SECONDS   most seconds from the timeout or the cancel to the
#                            error (default 4)
#   DMF_CANCEL_MAX_GROWTH    most bytes the backend may keep (default 1 MB)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$here/../lib/cluster.sh"

dmf_use_server

max_latency=${DMF_CANCEL_MAX_SECONDS:-4}
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
big_options='{"layers": [512], "epochs": 1000, "seed": 1}'

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
((threads_seen >= 2)) || fail "(b) expected the helper thread and an OpenBLAS thread, saw $threads_seen threads besides the backend's"
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
echo "ok"
