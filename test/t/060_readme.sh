#!/usr/bin/env bash
# The README's SQL examples, verbatim: every ```sql block, in order, in one
# fresh database, each must run without error. Then the pg_cron recipe for
# real: both jobs it schedules are rescheduled to every minute, pg_cron runs
# them (this waits up to ~2.5 minutes) and cron.job_run_details and the
# models table must show that they succeeded and replaced the model.
#
# pg_cron only runs in the database named by cron.database_name: test/check.sh
# starts the cluster with pg_cron preloaded and cron.database_name =
# 'dmf_readme' and creates that database. On another server the pg_cron
# blocks are skipped (and said so).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readme=$here/../../README.md
db=dmf_readme
q() { psql -X -q -v ON_ERROR_STOP=1 -At -d "$db" "$@"; }

dmf_preloaded=$(psql -X -At -d postgres -c "SELECT current_setting('shared_preload_libraries')" |
    tr -d ' ' | tr ',' '\n' | grep -cx dmf || true)
cron_db=$(psql -X -At -d postgres -c "SELECT current_setting('cron.database_name', true)" 2>/dev/null || true)
with_cron=0
if [[ $cron_db == "$db" ]]; then
    with_cron=1
else
    echo "pg_cron is not set up for database $db on this server: its blocks are skipped"
fi

if ((with_cron)); then
    # pg_cron's launcher stays connected to its database and does not come
    # back if that database is dropped: empty it instead
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "SET client_min_messages = warning" \
        -c "DROP EXTENSION IF EXISTS pg_cron CASCADE" -c "DROP EXTENSION IF EXISTS dmf CASCADE" \
        -c "DROP SCHEMA public CASCADE" -c "CREATE SCHEMA public"
else
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
fi
cleanup() {
    if ((with_cron)); then
        q -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE 'dmf-%'" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

# the ```sql blocks, NUL-separated
blocks=$(mktemp)
trap 'cleanup; rm -f "$blocks"' EXIT
awk '/^```sql[[:space:]]*$/ { inside = 1; next }
     inside && /^```[[:space:]]*$/ { inside = 0; printf "%c", 0; next }
     inside { print }' "$readme" >"$blocks"

n=0
ran=0
while IFS= read -r -d '' block; do
    n=$((n + 1))
    if ((!with_cron)) && grep -q 'cron\.' <<<"$block"; then
        echo "--- block $n: skipped (pg_cron)"
        continue
    fi
    if ((!dmf_preloaded)) && grep -q 'dmf_progress' <<<"$block"; then
        echo "--- block $n: skipped (dmf is not in shared_preload_libraries; test/t/037_progress.sh runs it)"
        continue
    fi
    echo "--- block $n"
    if ! out=$(q -v VERBOSITY=terse <<<"$block" 2>&1); then
        printf '%s\n' "$block"
        echo "FAILED:"
        printf '%s\n' "$out"
        exit 1
    fi
    printf '%s\n' "$out" | head -n 12
    ran=$((ran + 1))
done <"$blocks"
echo "ran $ran of $n README blocks"
((n >= 15)) || { echo "expected at least 15 SQL blocks in the README"; exit 1; }

((with_cron)) || { echo ok; exit 0; }

# --- the pg_cron recipe, run by pg_cron ---------------------------------------------------
jobs=$(q -c "SELECT count(*) FROM cron.job WHERE jobname IN ('dmf-retrain-movies', 'dmf-refresh-movies')")
[[ $jobs == 2 ]] || { echo "the README did not schedule the two jobs (found $jobs)"; exit 1; }
before=$(q -c "SELECT dmf_info(model)->>'model_id' FROM models WHERE name = 'movies'")
since=$(q -c "SELECT now()")
# same commands, every minute (scheduling an existing job name updates it)
q -c "SELECT cron.schedule(jobname, '* * * * *', command) FROM cron.job
      WHERE jobname IN ('dmf-retrain-movies', 'dmf-refresh-movies')" >/dev/null
echo "waiting for pg_cron to run both jobs (minute granularity)"
deadline=$((SECONDS + 170))
while :; do
    done_jobs=$(q -c "SELECT count(DISTINCT j.jobname) FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                      WHERE j.jobname LIKE 'dmf-%' AND d.start_time >= '$since' AND d.status IN ('succeeded', 'failed')")
    ((done_jobs >= 2)) && break
    if ((SECONDS > deadline)); then
        echo "pg_cron did not run both jobs within the time limit:"
        q -c "SELECT j.jobname, d.status, d.return_message FROM cron.job_run_details d JOIN cron.job j USING (jobid)"
        exit 1
    fi
    sleep 3
done
q -c "SELECT j.jobname || ': ' || d.status || ' ' || coalesce(d.return_message, '') || ' in '
             || round(extract(epoch FROM d.end_time - d.start_time)::numeric, 1) || ' s'
      FROM cron.job_run_details d JOIN cron.job j USING (jobid)
      WHERE j.jobname LIKE 'dmf-%' AND d.start_time >= '$since' ORDER BY d.start_time"
failed=$(q -c "SELECT count(*) FROM cron.job_run_details d JOIN cron.job j USING (jobid)
               WHERE j.jobname LIKE 'dmf-%' AND d.start_time >= '$since' AND d.status <> 'succeeded'")
[[ $failed == 0 ]] || { echo "a dmf job failed"; exit 1; }
after=$(q -c "SELECT dmf_info(model)->>'model_id' FROM models WHERE name = 'movies'")
state=$(q -c "SELECT previous IS NOT NULL AND updated_at >= '$since' FROM models WHERE name = 'movies'")
echo "model id before: $before, after: $after"
[[ $after != "$before" && $state == t ]] || { echo "the jobs did not replace the model"; exit 1; }
predicted=$(q -c "SELECT count(dmf_predict(model, 1, 10)) FROM models WHERE name = 'movies'")
[[ $predicted == 1 ]] || { echo "the replaced model does not predict"; exit 1; }
echo ok
