#!/usr/bin/env bash
# The view dmf_progress and the setting dmf.log_progress.
#
# On the server under test: without dmf in its shared_preload_libraries (as
# test/check.sh starts it) the view is an ERROR whose hint says how to
# enable it; with dmf there, the view answers.
#
# Then on a throwaway cluster of its own (port from 54900) that preloads dmf,
# and pg_cron when it is installed:
#   (a) a running dmf_train is a row in phase "training" with its epoch, the
#       cap, the rows read, train and validation RMSE, elapsed and remaining
#   (b) another role without pg_read_all_stats sees the row's pid, database
#       and user only; with pg_read_all_stats, or as the training's own role,
#       everything
#   (c) pg_cancel_backend ends the training and its row goes; so does
#       pg_terminate_backend (the backend exits, no ERROR path runs)
#   (d) a dmf_refresh that is reading its ratings (a slow view) is a row in
#       phase "reading"; a training that ends normally leaves no row
#   (e) a pg_cron job's training is a row like any other (jobs start on the
#       minute: up to a minute's wait)
#   (f) dmf.log_progress writes a LOG line for each epoch to the server log,
#       and only a superuser may set it
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$here/../lib/cluster.sh"

dmf_use_server

fail() {
    echo "FAILED: $*"
    exit 1
}

echo "== the server under test"
preloaded=$(psql -X -A -t -d "${PGDATABASE:-postgres}" -c "SELECT current_setting('shared_preload_libraries')" |
    tr -d ' ' | tr ',' '\n' | grep -cx dmf || true)
probe="dmf_t037_probe_$$"
psql -X -q -d "${PGDATABASE:-postgres}" -c "CREATE DATABASE $probe" >/dev/null
out=$(psql -X -q -A -t -d "$probe" -c "SET client_min_messages = warning" -c "CREATE EXTENSION dmf" \
          -c "SELECT count(*) FROM dmf_progress" 2>&1 || true)
psql -X -q -d "${PGDATABASE:-postgres}" -c "DROP DATABASE $probe" >/dev/null
if ((preloaded == 0)); then
    grep -q 'ERROR:  dmf_progress needs dmf in shared_preload_libraries' <<<"$out" || fail "without preload: $out"
    grep -q 'HINT:  Add dmf to shared_preload_libraries in postgresql.conf and restart the server.' <<<"$out" ||
        fail "without preload, no hint: $out"
    echo "    not preloaded: ${out//$'\n'/ / }"
else
    [[ $out =~ ^[0-9]+$ ]] || fail "preloaded, the view failed: $out"
    echo "    preloaded: the view answers"
fi

echo "== a cluster of its own, dmf preloaded"
libdir=$("$(dmf_pg_config)" --pkglibdir)
[[ -f $libdir/dmf.so ]] || { echo "dmf is not installed in $libdir: the rest is skipped"; echo ok; exit 0; }
conf=("shared_preload_libraries = 'dmf'")
with_cron=0
if [[ -f $libdir/pg_cron.so ]]; then
    conf=("shared_preload_libraries = 'dmf, pg_cron'" "cron.database_name = 'dmf_t037_cron'")
    with_cron=1
fi
unset DMF_USE_EXISTING PGHOST PGPORT PGUSER PGDATABASE
DMF_PGPORT=54900 dmf_cluster_start "${conf[@]}" >/dev/null 2>&1 || fail "the cluster did not start"
server_log="$DMF_PGDIR/server.log"
db=dmf_t037
app=dmf_t037
work="$(mktemp -d)"
cleanup() {
    local p
    for p in $(jobs -p); do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
dmf_at_exit cleanup
q() { psql -X -q -v ON_ERROR_STOP=1 -A -t -d "$db" "$@"; }

# wait_for SECONDS SQL: until SQL returns a row (printed), or fail
wait_for() {
    local row deadline=$((SECONDS + $1))
    while ((SECONDS < deadline)); do
        row=$(q -F ' | ' -c "$2")
        if [[ -n "$row" ]]; then
            printf '%s\n' "$row"
            return 0
        fi
        sleep 0.2
    done
    return 1
}

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $db" \
    -c "CREATE ROLE dmf_t037_trainer LOGIN" -c "CREATE ROLE dmf_t037_watcher LOGIN"
q <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION dmf;
GRANT USAGE, CREATE ON SCHEMA public TO dmf_t037_trainer;
-- 4,000 users x 800 items, 60 ratings a user: epochs of a fraction of a second
CREATE TABLE ratings AS
SELECT u::bigint AS user_id, (1 + (u * 37 + k * 53) % 800)::bigint AS item_id,
       (1 + ((u % 7) * (k % 5) + u / 1000 + k) % 5)::float8 AS rating
FROM generate_series(1, 4000) u, generate_series(1, 60) k;
GRANT SELECT ON ratings TO dmf_t037_trainer;
-- a view whose reading takes 8 s: holds a command in its reading phase
CREATE FUNCTION slow_gate() RETURNS boolean LANGUAGE sql VOLATILE AS 'SELECT pg_sleep(8) IS NOT NULL';
CREATE VIEW slow_ratings AS SELECT * FROM ratings WHERE (SELECT slow_gate());
CREATE TABLE models AS
SELECT dmf_train('ratings', options => '{"epochs": 2, "layers": [16], "dim": 8, "threads": 1}') AS model;
SQL

long='{"epochs": 5000, "patience": 5000, "layers": [64], "dim": 16, "threads": 2, "seed": 3}'
columns="command, relation, phase, epoch, epochs, rows_read, train_rmse > 0, validation_rmse > 0,
         elapsed > '0'::interval, remaining IS NOT NULL, datname = current_database(), usename"

echo "== (a) a training in phase training"
PGAPPNAME="$app-a" PGUSER=dmf_t037_trainer psql -X -q -d "$db" \
    -c "SELECT length(dmf_train('ratings', options => '$long'))" >"$work/a.out" 2>&1 &
row=$(wait_for 120 "SELECT pid, $columns FROM dmf_progress
                    WHERE usename = 'dmf_t037_trainer' AND phase = 'training' AND epoch >= 2") ||
    fail "(a) no row in phase training with two epochs in 120 s"
echo "    $row"
pid=${row%% *}
expected="dmf_train | public.ratings | training | "
[[ $row == *"| $expected"* ]] || fail "(a) command, relation or phase: $row"
[[ $row == *"| 5000 | 240000 | t | t | t | t | t | dmf_t037_trainer" ]] ||
    fail "(a) epochs, rows read, RMSEs, elapsed, remaining, database or user: $row"
[[ $(q -c "SELECT count(*) FROM dmf_progress WHERE pid = $pid") == 1 ]] || fail "(a) one row per training"
# the README's query of the view (test/t/060_readme.sh skips it without dmf preloaded)
readme_query=$(awk '/^```sql/ { inside = 1; buf = ""; next }
                    inside && /^```/ { inside = 0; if (buf ~ /FROM dmf_progress/) printf "%s", buf; next }
                    inside { buf = buf $0 "\n" }' "$here/../../README.md")
[[ -n $readme_query ]] || fail "(a) no query of dmf_progress in the README"
readme_row=$(q -F ' | ' -c "$readme_query" | grep "^$pid | dmf_t037_trainer | public.ratings | training | ") ||
    fail "(a) the README's query: $(q -c "$readme_query" 2>&1)"
echo "    the README's query: $readme_row"

echo "== (b) what other roles see"
other=$(q -c "SET ROLE dmf_t037_watcher" -c "SELECT concat_ws(',', pid, datname, usename,
                coalesce(command, relation, phase, epoch::text, epochs::text, rows_read::text,
                         train_rmse::text, validation_rmse::text, elapsed::text, remaining::text, 'hidden'))
              FROM dmf_progress WHERE pid = $pid")
[[ $other == "$pid,$db,dmf_t037_trainer,hidden" ]] || fail "(b) a role without privileges saw: $other"
own=$(PGUSER=dmf_t037_trainer q -c "SELECT relation FROM dmf_progress WHERE pid = $pid")
[[ $own == public.ratings ]] || fail "(b) the training's own role saw: $own"
q -c "GRANT pg_read_all_stats TO dmf_t037_watcher"
stats=$(q -c "SET ROLE dmf_t037_watcher" -c "SELECT relation FROM dmf_progress WHERE pid = $pid")
[[ $stats == public.ratings ]] || fail "(b) a member of pg_read_all_stats saw: $stats"
echo "    without privileges: $other; the training's role and pg_read_all_stats: $stats"

echo "== (c) cancelled and terminated trainings leave no row"
q -c "SELECT pg_cancel_backend($pid)" >/dev/null
wait_for 30 "SELECT 1 WHERE NOT EXISTS (SELECT FROM dmf_progress WHERE pid = $pid)" >/dev/null ||
    fail "(c) the cancelled training's row stayed"
wait
grep -q 'canceling statement due to user request' "$work/a.out" || fail "(c) not cancelled: $(cat "$work/a.out")"
PGAPPNAME="$app-c" psql -X -q -d "$db" \
    -c "SELECT length(dmf_train('ratings', options => '$long'))" >"$work/c.out" 2>&1 &
row=$(wait_for 120 "SELECT pid FROM dmf_progress p JOIN pg_stat_activity a USING (pid)
                    WHERE a.application_name = '$app-c' AND p.epoch >= 1") ||
    fail "(c) the second training did not show"
q -c "SELECT pg_terminate_backend($row)" >/dev/null
wait_for 30 "SELECT 1 WHERE NOT EXISTS (SELECT FROM dmf_progress WHERE pid = $row)" >/dev/null ||
    fail "(c) the terminated training's row stayed"
wait
echo "    rows gone after pg_cancel_backend and pg_terminate_backend"

echo "== (d) a refresh while it reads; a training that ends"
PGAPPNAME="$app-d" psql -X -q -d "$db" \
    -c "SELECT length(dmf_refresh(model, 'slow_ratings')) FROM models" >"$work/d.out" 2>&1 &
row=$(wait_for 30 "SELECT command, relation, phase, epoch IS NULL FROM dmf_progress p
                   JOIN pg_stat_activity a USING (pid)
                   WHERE a.application_name = '$app-d' AND p.phase = 'reading'") ||
    fail "(d) the refresh did not show"
[[ $row == "dmf_refresh | public.slow_ratings | reading | t" ]] || fail "(d) the refresh's row: $row"
wait
grep -q ERROR "$work/d.out" && fail "(d) the refresh failed: $(cat "$work/d.out")"
left=$(q -c "SELECT length(dmf_train('ratings', options => '{\"epochs\": 2, \"layers\": [16], \"dim\": 8}')) > 0" \
         -c "SELECT count(*) FROM dmf_progress WHERE pid = pg_backend_pid()")
[[ $left == $'t\n0' ]] || fail "(d) a finished training left its row: $left"
# an ERROR while reading, and a training inside another's reading (a view that trains)
left=$(q -v ON_ERROR_STOP=0 <<'SQL' 2>&1
CREATE VIEW failing_ratings AS
SELECT user_id, item_id, CASE WHEN user_id = 3999 THEN 1 / 0 ELSE rating END AS rating FROM ratings;
SELECT dmf_train('failing_ratings', options => '{"epochs": 2, "layers": [16], "dim": 8}');
SELECT count(*) FROM dmf_progress WHERE pid = pg_backend_pid();
CREATE VIEW training_ratings AS
SELECT * FROM ratings
WHERE (SELECT length(dmf_train('ratings', options => '{"epochs": 1, "layers": [8], "dim": 4}')) > 0);
SELECT length(dmf_train('training_ratings', options => '{"epochs": 1, "layers": [16], "dim": 8}')) > 0;
SELECT count(*) FROM dmf_progress WHERE pid = pg_backend_pid();
SQL
)
[[ $left == *"division by zero"*$'\n0\nt\n0' ]] || fail "(d) after an ERROR or a nested training: $left"
echo "    $row; none left after a training, an ERROR, a training inside another"

if ((with_cron)); then
    echo "== (e) a pg_cron job's training (jobs start on the minute)"
    psql -X -q -d postgres -c "CREATE DATABASE dmf_t037_cron"
    psql -X -q -v ON_ERROR_STOP=1 -d dmf_t037_cron >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_cron;
CREATE EXTENSION dmf;
CREATE TABLE cron_ratings AS
SELECT u::bigint AS user_id, (1 + (u * 37 + k * 53) % 800)::bigint AS item_id,
       (1 + ((u % 7) * (k % 5) + u / 1000 + k) % 5)::float8 AS rating
FROM generate_series(1, 4000) u, generate_series(1, 60) k;
SELECT cron.schedule('dmf-t037', '* * * * *',
                     \$\$SELECT length(dmf_train('cron_ratings', options => '$long'))\$\$);
SQL
    row=$(wait_for 150 "SELECT pid, datname, usename, phase FROM dmf_progress
                        WHERE relation = 'public.cron_ratings' AND epoch >= 1") ||
        fail "(e) the pg_cron job's training did not show within 150 s"
    psql -X -q -d dmf_t037_cron -c "SELECT cron.unschedule('dmf-t037')" >/dev/null
    pid=${row%% *}
    [[ $row == "$pid | dmf_t037_cron | postgres | training" ]] || fail "(e) the job's row: $row"
    q -c "SELECT pg_cancel_backend($pid)" >/dev/null
    wait_for 30 "SELECT 1 WHERE NOT EXISTS (SELECT FROM dmf_progress WHERE pid = $pid)" >/dev/null ||
        fail "(e) the cancelled job's row stayed"
    echo "    $row; gone after its cancel"
else
    echo "== (e) skipped: pg_cron is not installed"
fi

echo "== (f) dmf.log_progress"
q <<'SQL' >/dev/null
CREATE ROLE plain LOGIN;
CREATE TABLE r AS SELECT u AS user_id, i AS item_id, 1 + (u * i) % 5 AS rating
FROM generate_series(1, 40) u, generate_series(1, 30) i WHERE (u + i) % 2 = 0;
SET dmf.log_progress = on;
SELECT length(dmf_train('r', options => '{"epochs": 3, "layers": [8], "dim": 4, "patience": 3}'));
SQL
lines=$(grep -c 'LOG:  dmf_train of public.r: epoch [1-3]\/3: train RMSE [0-9.]*, validation RMSE [0-9.]*, [0-9.]* s' \
    "$server_log" || true)
[[ $lines == 3 ]] || fail "(f) $lines LOG lines for 3 epochs: $(grep 'dmf_train of' "$server_log")"
echo "    3 LOG lines for 3 epochs, e.g. $(grep -o 'dmf_train of public.r: epoch 1.*' "$server_log")"
err=$(q -U plain -c "SET dmf.log_progress = on" 2>&1 || true)
grep -q 'permission denied to set parameter "dmf.log_progress"' <<<"$err" || fail "(f) a plain role set it: $err"
echo "    a role without superuser cannot set it"
echo ok
