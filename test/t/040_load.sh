#!/usr/bin/env bash
# Predictions under concurrent load while another session retrains and
# swaps the model in a loop: no error, no backend crash, and every query
# sees one consistent model (all its predictions from the same model id).
# Bounded: DMF_LOAD_SECONDS (20) of pgbench with 8 clients.
set -euo pipefail

seconds=${DMF_LOAD_SECONDS:-20}
db=dmf_t_load
export PGOPTIONS='-c client_min_messages=warning'
pgbench=$(command -v pgbench || echo "$(pg_config --bindir)/pgbench")
work=$(mktemp -d)
cleanup() {
    [[ -n "${swapper:-}" ]] && kill "$swapper" 2>/dev/null || true
    wait 2>/dev/null || true
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
CREATE EXTENSION dmf;
CREATE TABLE ratings AS
SELECT u AS user_id, i AS item_id,
       greatest(1, least(5, round(3 + 1.5 * sin(u * 0.7) * cos(i * 1.3) + 0.5 * sin(u * i))))::int AS rating
FROM generate_series(1, 400) u, generate_series(1, 200) i
WHERE abs(hashtext(u || ':' || i)) % 100 < 20;
CREATE TABLE models (name text PRIMARY KEY, model bytea);
INSERT INTO models SELECT 'm', dmf_train('ratings', options => '{"layers": [32], "dim": 8, "epochs": 3, "seed": 1, "threads": 1}');
SQL
pid_before=$(psql -X -qAt -d "$db" -c "SELECT pg_postmaster_start_time()")

# a query that predicts 200 pairs from one snapshot of the models table and
# fails unless they all come from the model that row held
cat > "$work/predict.sql" <<'SQL'
\set u random(1, 400)
SELECT CASE WHEN count(DISTINCT dmf_info(m.model)->>'model_id') = 1 AND count(p) > 0
            THEN 1 ELSE 1 / (count(*) - count(*)) END
FROM (SELECT m.model, dmf_predict(m.model, :u, i) AS p
      FROM models m, generate_series(1, 200) i WHERE m.name = 'm') m;
SQL

# retrain and swap in a loop, each swap its own transaction
(
    end=$((SECONDS + seconds))
    n=0
    while ((SECONDS < end)); do
        n=$((n + 1))
        psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c \
            "UPDATE models SET model = dmf_train('ratings', options => '{\"layers\": [32], \"dim\": 8, \"epochs\": 2, \"seed\": $n, \"threads\": 1}') WHERE name = 'm'" \
            || exit 1
    done
    echo "$n" > "$work/swaps"
) &
swapper=$!

"$pgbench" -n -c 8 -j 2 -T "$seconds" -f "$work/predict.sql" "$db" > "$work/pgbench.out" 2>&1 || {
    cat "$work/pgbench.out"; echo "pgbench failed"; exit 1; }
wait "$swapper" || { echo "the retrain loop failed"; exit 1; }
swapper=
cat "$work/pgbench.out" | grep -E "transactions actually processed|failed transactions|tps =" || true

failed=$(grep -Eo 'number of failed transactions: [0-9]+' "$work/pgbench.out" | grep -Eo '[0-9]+$' || echo 0)
processed=$(grep -Eo 'number of transactions actually processed: [0-9]+' "$work/pgbench.out" | grep -Eo '[0-9]+$' || echo 0)
pid_after=$(psql -X -qAt -d "$db" -c "SELECT pg_postmaster_start_time()")
echo "swaps: $(cat "$work/swaps"); queries: $processed; failed: $failed"
if [[ "$failed" != 0 || "$processed" == 0 || "$pid_before" != "$pid_after" ]]; then
    echo "FAILED: errors under load, or the server restarted"
    exit 1
fi
echo "ok"
