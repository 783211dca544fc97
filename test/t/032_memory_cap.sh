#!/usr/bin/env bash
# dmf.max_memory is a cap that holds.  For each function whose memory grows
# with its input (training, with a validation relation and on implicit
# feedback, refresh, dmf_evaluate, dmf_evaluate_ranking, dmf_explain, the
# factor aggregates):
#   (a) under SET dmf.max_memory = '1MB' it is refused with SQLSTATE 54000 and
#       a hint "SET dmf.max_memory = '...'"
#   (b) under the value that hint names it succeeds: the hint is enough
#   (c) the peak of its memory context (dmf logs it at DEBUG1 when the
#       function ends; it is taken at every large allocation) is within the
#       cap, and so is the growth of the backend's peak resident memory
#       (VmHWM), measured from outside in a new session
# Two cases come from a hostile review: a refresh and a training of 20,000
# users x 100 items that went 1.4-1.7x over their own hinted cap, and
# dmf_evaluate_ranking, which ignored the cap for one user's held-out rows.
# The model a function reads is the model cache's, not the function's: it
# is not counted (the README's "Memory" section says what a model costs).
#
#   DMF_MEMORY_RSS_SLACK  bytes of resident memory a backend may grow beyond
#                         the cap (OpenBLAS's buffers, the catalog caches,
#                         the model cache; default 48 MB)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$here/../lib/cluster.sh"

dmf_use_server

rss_slack=${DMF_MEMORY_RSS_SLACK:-50331648}
admin_db=${PGDATABASE:-postgres}
db="dmf_t032_$$"
cleanup() {
    psql -X -q -d "$admin_db" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
dmf_at_exit cleanup

failures=0
fail() {
    echo "FAILED: $*"
    failures=$((failures + 1))
}

psql -X -q -v ON_ERROR_STOP=1 -d "$admin_db" -c "CREATE DATABASE $db"
echo "== generating the tables"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
CREATE EXTENSION dmf;
-- 20,000 users x 100 items, as in the review (2M ratings)
CREATE TABLE wide AS
    SELECT u::bigint AS user_id, i::bigint AS item_id, (1 + (u * 7 + i * 3) % 5)::float8 AS rating
    FROM generate_series(1, 20000) u, generate_series(1, 100) i;
CREATE TABLE small AS SELECT * FROM wide WHERE user_id <= 2000;
CREATE TABLE small_val AS SELECT * FROM small WHERE (user_id + item_id) % 10 = 0;
CREATE TABLE small_train AS SELECT * FROM small WHERE (user_id + item_id) % 10 <> 0;
-- one user with 600,000 held-out rows (items repeat; the model knows 100)
CREATE TABLE heldout AS
    SELECT 1::bigint AS user_id, (1 + g % 5000)::bigint AS item_id FROM generate_series(1, 600000) g;
-- one user with 200,000 interactions (repeats of the 100 items)
CREATE TABLE clicks AS
    SELECT 7::bigint AS user_id, (1 + g % 100)::bigint AS item_id, 1::float8 AS rating
    FROM generate_series(1, 200000) g;
-- 40,000 users x 2 items: one item's factor aggregates 40,000 ratings
CREATE TABLE pairs AS
    SELECT u::bigint AS user_id, i::bigint AS item_id, (1 + (u + i) % 5)::float8 AS rating
    FROM generate_series(1, 40000) u, generate_series(1, 2) i;
CREATE TABLE models (name text PRIMARY KEY, model bytea);
INSERT INTO models SELECT 'pairs', dmf_train('pairs', options => '{"epochs": 1, "dim": 4, "layers": [4], "seed": 1}');
INSERT INTO models SELECT 'small', dmf_train('small', options => '{"epochs": 1, "dim": 8, "layers": [8], "seed": 1}');
INSERT INTO models SELECT 'implicit', dmf_train('small', 'user_id', 'item_id', NULL,
    '{"feedback": "implicit", "epochs": 1, "dim": 8, "layers": [8], "seed": 1}');
ANALYZE;
SQL

backend_vm() { # PID FIELD: kB of /proc/PID/status's FIELD
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# run_capped NAME SQL: (a) refused at 1MB with a hint, (b) runs at the hint,
# (c) the peak it logs and the backend's resident growth are within the cap.
run_capped() {
    local name=$1 sql=$2 out hint cap_bytes peak pid rss0 hwm1
    out=$(psql -X -q -d "$db" -v VERBOSITY=verbose 2>&1 <<SQL || true
SET dmf.max_memory = '1MB';
$sql;
SQL
)
    if ! grep -q '54000' <<<"$out"; then
        fail "$name: not refused with 54000 under 1MB: $(head -c 400 <<<"$out")"
        return
    fi
    hint=$(sed -n "s/.*SET dmf.max_memory = '\([^']*\)'.*/\1/p" <<<"$out" | head -n 1)
    if [[ -z "$hint" ]]; then
        fail "$name: the refusal names no setting: $(head -c 400 <<<"$out")"
        return
    fi
    # a new session: its resident memory before, and its peak after
    out=$(psql -X -q -At -d "$db" -v ON_ERROR_STOP=1 2>&1 <<SQL || true
SELECT 'rss0 ' || substring(pg_read_file('/proc/self/status') from 'VmRSS:\\s*(\\d+)');
SET dmf.max_memory = '$hint';
SELECT 'cap ' || pg_catalog.pg_size_bytes(pg_catalog.current_setting('dmf.max_memory'));
SET client_min_messages = debug1;
$sql;
RESET client_min_messages;
SELECT 'hwm1 ' || substring(pg_read_file('/proc/self/status') from 'VmHWM:\\s*(\\d+)');
SQL
)
    if grep -q 'ERROR' <<<"$out"; then
        fail "$name: fails under the hinted dmf.max_memory = '$hint': $(grep ERROR <<<"$out" | head -n 2)"
        return
    fi
    cap_bytes=$(awk '$1 == "cap" { print $2 }' <<<"$out")
    rss0=$(awk '$1 == "rss0" { print $2 }' <<<"$out")
    hwm1=$(awk '$1 == "hwm1" { print $2 }' <<<"$out")
    # the largest peak logged by the statement's budgets
    peak=$(sed -n 's/.*peak memory \([0-9]*\) bytes.*/\1/p' <<<"$out" | sort -n | tail -n 1)
    if [[ -z "$peak" || -z "$cap_bytes" || -z "$rss0" || -z "$hwm1" ]]; then
        fail "$name: could not measure (peak '$peak', cap '$cap_bytes', rss '$rss0' '$hwm1')"
        return
    fi
    printf '%-28s hint %-8s peak %6.1f MB of %6.1f MB (%.2f); resident growth %6.1f MB\n' \
        "$name" "$hint" "$(awk -v p="$peak" 'BEGIN { print p / 1048576 }')" \
        "$(awk -v c="$cap_bytes" 'BEGIN { print c / 1048576 }')" \
        "$(awk -v p="$peak" -v c="$cap_bytes" 'BEGIN { print p / c }')" \
        "$(awk -v a="$rss0" -v b="$hwm1" 'BEGIN { print (b - a) / 1024 }')"
    if ((peak > cap_bytes)); then
        fail "$name: peak $peak bytes over the cap $cap_bytes"
    fi
    if (((hwm1 - rss0) * 1024 > cap_bytes + rss_slack)); then
        fail "$name: the backend grew by $(((hwm1 - rss0) * 1024)) bytes, over the cap $cap_bytes + $rss_slack"
    fi
}

echo "== each function under a cap"
run_capped "train (20000 x 100)" \
    "SELECT length(dmf_train('wide', options => '{\"epochs\": 1, \"dim\": 8, \"layers\": [8], \"seed\": 1}'))"
run_capped "train, validation relation" \
    "SELECT length(dmf_train('small_train', options => '{\"epochs\": 1, \"dim\": 8, \"layers\": [8], \"validation\": \"public.small_val\"}'))"
run_capped "train, implicit" \
    "SELECT length(dmf_train('small', 'user_id', 'item_id', NULL, '{\"feedback\": \"implicit\", \"epochs\": 1, \"dim\": 8, \"layers\": [8]}'))"
run_capped "refresh (20000 x 100)" \
    "SELECT length(dmf_refresh(model, 'wide')) FROM models WHERE name = 'small'"
run_capped "evaluate_ranking" \
    "SELECT users FROM models, dmf_evaluate_ranking(model, 'heldout', 'user_id', 'item_id', 10) WHERE name = 'small'"
run_capped "explain" \
    "SELECT count(*) FROM models, dmf_explain(model, 7, 3, 5, 'clicks', 'user_id', 'item_id', NULL) WHERE name = 'implicit'"
run_capped "dmf_item_factor" \
    "SELECT dmf_item_factor(m.model, p.user_id, p.rating) IS NOT NULL FROM models m, pairs p WHERE m.name = 'pairs' AND p.item_id = 1"

# dmf_evaluate streams its rows: it runs under the smallest cap
out=$(psql -X -q -d "$db" -v ON_ERROR_STOP=1 2>&1 <<'SQL' || true
SET dmf.max_memory = '1MB';
SET client_min_messages = debug1;
SELECT covered FROM models, dmf_evaluate(model, 'wide', 'user_id', 'item_id', 'rating') WHERE name = 'small';
SQL
)
peak=$(sed -n 's/.*dmf_evaluate peak memory \([0-9]*\) bytes.*/\1/p' <<<"$out" | tail -n 1)
if grep -q ERROR <<<"$out" || [[ -z "$peak" ]]; then
    fail "dmf_evaluate under 1MB: $(grep ERROR <<<"$out" | head -n 1)"
else
    echo "dmf_evaluate under 1MB: peak $peak bytes"
    ((peak <= 1048576)) || fail "dmf_evaluate: peak $peak over 1MB"
fi

# A call refused inside a savepoint, from a cursor opened before it: its
# context outlives ROLLBACK TO (the portal is the cursor's), but its budget
# must not cap the calls after it.
out=$(psql -X -q -At -d "$db" 2>&1 <<'SQL' || true
BEGIN;
SET LOCAL dmf.max_memory = '1MB';
DECLARE c CURSOR FOR
    SELECT users FROM models, dmf_evaluate_ranking(model, 'heldout', 'user_id', 'item_id', 10) WHERE name = 'small';
SAVEPOINT s;
FETCH c;
ROLLBACK TO s;
SET LOCAL dmf.max_memory = '1GB';
SELECT 'trained ' || (length(dmf_train('small', options => '{"epochs": 1, "dim": 8, "layers": [8]}')) > 0);
COMMIT;
SQL
)
if ! grep -q 'ERROR:.*dmf_evaluate_ranking\|ERROR:.*held-out rows' <<<"$out" || ! grep -q '^trained true' <<<"$out"; then
    fail "after a refusal rolled back to a savepoint, a training is still capped: $out"
else
    echo "a refusal rolled back to a savepoint leaves no cap behind"
fi

if ((failures > 0)); then
    echo "$failures failures"
    exit 1
fi
echo "dmf.max_memory held for every function"
