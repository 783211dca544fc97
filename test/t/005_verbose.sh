#!/usr/bin/env bash
# verbose training prints one NOTICE per epoch (the progress a psql user
# watches), and nothing with verbose off.  Timings vary, so count lines.
set -euo pipefail

db=dmf_t_verbose
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
trap 'psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT

run() {
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" 2>&1 <<SQL
SET client_min_messages = notice;
CREATE EXTENSION IF NOT EXISTS dmf;
CREATE TABLE IF NOT EXISTS r AS
SELECT u AS user_id, i AS item_id, 1 + (u * 7 + i * 3) % 5 AS rating
FROM generate_series(1, 60) u, generate_series(1, 40) i
WHERE (u + i) % 3 = 0;
SELECT length(dmf_train('r', options => '{"epochs": 4, "validation_fraction": 0, "layers": [8], "dim": 4, "verbose": $1}')) > 0 AS trained;
SQL
}

with=$(run true)
without=$(run false)
n_with=$(grep -c 'NOTICE:  epoch [0-9]*/4: train RMSE' <<<"$with" || true)
n_without=$(grep -c 'NOTICE:  epoch' <<<"$without" || true)
echo "verbose: $n_with epoch notices; quiet: $n_without"
if [[ $n_with -ne 4 || $n_without -ne 0 ]]; then
    echo "expected 4 and 0"
    printf '%s\n' "$with"
    exit 1
fi
echo "ok"
