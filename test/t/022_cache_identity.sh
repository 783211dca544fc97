#!/usr/bin/env bash
# The backend-local model cache must never answer for one model with the
# decoding of another.  Role bob forges a model B with alice's model A's
# header byte for byte (same id, size, payload CRC32C, header CRC32C) but
# another payload (test/fuzz/forge_collision.c: item factors and anchors
# rotated, the CRC forced through a few weight bits).  In one backend, as a
# connection pool would share it, bob uses B and then alice uses A, or the
# other way round: each must get exactly its own model's answers, which are
# recorded first in fresh backends.
#
#   (1) B from bob's table, then A from alice's table (TOAST pointers)
#   (2) B from bob's table, then A in memory (no TOAST pointer)
#   (3) A from alice's table, then B from bob's table, then A again
#   (4) B in memory, then A in memory
#   (5) one query over rows holding A, B and A again, each copied in
#       memory per row: one call site sees both models' bytes
#   (6) B cached, then a parallel dmf_user_factor aggregate over A: the
#       leader deserializes the workers' states, which name the model by
#       its header (A from the table, and A in memory)
#
# Checked: dmf_predict on a few pairs, dmf_recommend top 5, dmf_evaluate and
# the dmf_user_factor aggregate (serial, and parallel in (6)).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$here/../lib/cluster.sh"

dmf_use_server

admin_db=${PGDATABASE:-postgres}
db="dmf_t022_$$"
alice="dmf_t022_alice_$$"
bob="dmf_t022_bob_$$"
work="$(mktemp -d)"
cleanup() {
    psql -X -q -d "$admin_db" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    psql -X -q -d "$admin_db" -c "DROP ROLE IF EXISTS $alice" -c "DROP ROLE IF EXISTS $bob" >/dev/null 2>&1 || true
    rm -rf "$work"
}
dmf_at_exit cleanup

fail() {
    echo "FAILED: $*"
    exit 1
}

q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$db" "$@"; }

echo "== building test/fuzz/forge_collision.c"
pgc="$(dmf_pg_config)" || fail "pg_config not found"
pg_include="$("$pgc" --includedir-server)"
# Debian ships libpgport.a in the package library directory (as test/fuzz/Makefile)
libpgport=""
for f in "$("$pgc" --pkglibdir)/libpgport.a" "$("$pgc" --libdir)/libpgport.a"; do
    if [[ -f "$f" ]]; then
        libpgport=$f
        break
    fi
done
[[ -n "$libpgport" ]] || fail "libpgport.a not found (it has the CRC32C code)"
gcc -std=gnu99 -O2 -Wall -DDMF_STANDALONE -I"$DMF_ROOT/src/core" -I"$DMF_ROOT/test/fuzz" -I"$pg_include" \
    -o "$work/forge_collision" "$DMF_ROOT/test/fuzz/forge_collision.c" "$libpgport" -lm ||
    fail "could not build forge_collision"

echo "== alice trains model A on her ratings (300 users x 150 items)"
psql -X -q -v ON_ERROR_STOP=1 -d "$admin_db" -c "CREATE DATABASE $db"
psql -X -q -v ON_ERROR_STOP=1 -d "$admin_db" \
    -c "CREATE ROLE $alice NOLOGIN" -c "CREATE ROLE $bob NOLOGIN"
q -v alice="$alice" -v bob="$bob" <<'SQL'
CREATE EXTENSION dmf;
-- a rank-3 taste plus noise, 1..5 stars, about 30% observed; no random()
CREATE TABLE alice_ratings AS
WITH u AS (SELECT g AS user_id, sin(g * 1.3) AS a, cos(g * 0.7) AS b, sin(g * 0.31) AS c
           FROM generate_series(1, 300) g),
     i AS (SELECT g AS item_id, cos(g * 0.9) AS a, sin(g * 1.7) AS b, cos(g * 0.23) AS c
           FROM generate_series(1, 150) g)
SELECT u.user_id::bigint, i.item_id::bigint,
       greatest(1, least(5, round(3.2 + 1.3 * (u.a * i.a + u.b * i.b + u.c * i.c)
                                  + 0.4 * sin(u.user_id * i.item_id * 0.37))))::float8 AS rating
FROM u, i
WHERE abs(hashtext(u.user_id || ':' || i.item_id)) % 100 < 30;
ANALYZE alice_ratings;
-- EXTERNAL: out of line and uncompressed, as a real model is stored
CREATE TABLE alice_models (model bytea);
ALTER TABLE alice_models ALTER model SET STORAGE EXTERNAL;
CREATE TABLE bob_models (model bytea);
ALTER TABLE bob_models ALTER model SET STORAGE EXTERNAL;
GRANT SELECT ON alice_ratings TO :"alice";
GRANT SELECT, INSERT ON alice_models TO :"alice";
GRANT SELECT ON bob_models TO :"bob";
SET ROLE :"alice";
INSERT INTO alice_models
SELECT dmf_train('alice_ratings', options => '{"epochs": 5, "layers": [32], "dim": 16, "threads": 1, "seed": 7}');
RESET ROLE;
SQL

echo "== bob forges model B: A's header, another payload"
q -c "SELECT encode(model, 'base64') FROM alice_models" | base64 -d >"$work/A.bin"
"$work/forge_collision" "$work/A.bin" "$work/B.bin" || fail "forging B failed"
{ base64 -w 0 "$work/B.bin"; echo; } |
    q -c "CREATE TEMP TABLE stage (b64 text)" -c "COPY stage FROM STDIN" \
        -c "INSERT INTO bob_models SELECT decode(b64, 'base64') FROM stage"
facts=$(q -F ' ' <<'SQL'
SELECT octet_length(a.model) = octet_length(b.model),
       substr(a.model, 1, 128) = substr(b.model, 1, 128),
       a.model <> b.model,
       (SELECT count(*) FROM alice_models) = 1 AND (SELECT count(*) FROM bob_models) = 1,
       octet_length(a.model)
FROM alice_models a, bob_models b;
SQL
)
read -r same_len same_header differ one_each a_len <<<"$facts"
[[ "$same_len $same_header $differ $one_each" == "t t t t" ]] ||
    fail "B is not a same-header, different-payload copy of A: $facts"
echo "A and B: $a_len bytes each, identical 128-byte headers, different payloads"
# both must be stored out of line: count the chunks in each TOAST table
for t in alice_models bob_models; do
    chunks=$(q -c "SELECT reltoastrelid::regclass FROM pg_class WHERE oid = '$t'::regclass" |
        { read -r toast; q -c "SELECT count(*) FROM $toast"; })
    ((chunks > 0)) || fail "$t's model is not stored out of line"
    echo "$t: the model is stored out of line ($chunks TOAST chunks)"
done

# ---- the probes: SQL printing "<label>|<model>|<kind>|<value>" lines ----

# probe LABEL MODEL SOURCE KINDS: SOURCE is a FROM item with a column model
probe() {
    local label=$1 model=$2 src=$3 kinds=$4 kind
    for kind in $kinds; do
        case $kind in
        predict)
            cat <<SQL
SELECT '$label|$model|predict|' || string_agg(format('%s:%s=%s', p.u, p.i, dmf_predict(m.model, p.u, p.i)), ' ' ORDER BY p.u, p.i)
FROM $src m, (VALUES (1, 1), (2, 50), (7, 40), (42, 99), (150, 3), (299, 150), (300, 77)) p(u, i);
SQL
            ;;
        recommend)
            cat <<SQL
SELECT '$label|$model|recommend|' || string_agg(format('%s=%s', r.item_id, r.score), ' ' ORDER BY r.ord)
FROM $src m, LATERAL dmf_recommend(m.model, 7, 5) WITH ORDINALITY r(item_id, score, ord);
SQL
            ;;
        evaluate)
            cat <<SQL
SELECT '$label|$model|evaluate|' || format('covered %s rmse %s mae %s', e.covered, e.rmse, e.mae)
FROM $src m, LATERAL dmf_evaluate(m.model, 'alice_ratings') e;
SQL
            ;;
        aggregate | aggregate_parallel)
            # the model as a scalar subquery (an InitPlan), as in sql/extend.sql
            cat <<SQL
SELECT '$label|$model|aggregate|' || count(f) || ' factors, md5 ' || md5(string_agg(format('%s=%s', user_id, f), ';' ORDER BY user_id))
FROM (SELECT user_id, dmf_user_factor((SELECT model FROM $src m), item_id, rating) AS f
      FROM alice_ratings GROUP BY user_id) s;
SQL
            ;;
        esac
    done
}

a_table="alice_models"
b_table="bob_models"
# a copy made in the query: the functions get the bytes, not a TOAST pointer
a_mem="(SELECT model || ''::bytea AS model FROM alice_models)"
b_mem="(SELECT model || ''::bytea AS model FROM bob_models)"
all_kinds="predict recommend evaluate aggregate"
serial="SET max_parallel_workers_per_gather = 0;"

echo "== the genuine answers of A and of B, each in a fresh backend"
{ echo "$serial"; probe genuine A "$a_table" "$all_kinds"; } | q >"$work/genuine_A.out"
{ echo "$serial"; probe genuine B "$b_table" "$all_kinds"; } | q >"$work/genuine_B.out"
cat "$work/genuine_A.out" "$work/genuine_B.out" >"$work/genuine.out"
sed 's/^/    /' "$work/genuine.out" | cut -c 1-150
failures=0
for kind in $all_kinds; do
    va=$(grep "^genuine|A|$kind|" "$work/genuine.out" | cut -d '|' -f 4-)
    vb=$(grep "^genuine|B|$kind|" "$work/genuine.out" | cut -d '|' -f 4-)
    [[ -n "$va" && -n "$vb" ]] || fail "no genuine $kind answer"
    # equal answers would make the checks below prove nothing
    [[ "$va" != "$vb" ]] || fail "B's $kind answers equal A's: the forged model is no test"
done
echo "B decodes in a fresh backend, and its answers differ from A's in every probe"

# check SESSION_NAME FILE: every line must be the genuine answer of its model
check() {
    local name=$1 file=$2 label model kind value want other ok=0 bad=0
    while IFS='|' read -r label model kind value; do
        [[ -n "$kind" ]] || continue
        want=$(grep "^genuine|$model|$kind|" "$work/genuine.out" | cut -d '|' -f 4-)
        if [[ "$value" == "$want" ]]; then
            ok=$((ok + 1))
        else
            bad=$((bad + 1))
            other=A
            [[ "$model" == A ]] && other=B
            if [[ "$value" == "$(grep "^genuine|$other|$kind|" "$work/genuine.out" | cut -d '|' -f 4-)" ]]; then
                echo "FAIL $name, $label: $model's $kind answered with $other's decoding"
            else
                echo "FAIL $name, $label: $model's $kind is neither A's nor B's answer: ${value:0:120}"
            fi
        fi
    done <"$file"
    ((ok + bad > 0)) || { echo "FAIL $name: no answers"; bad=1; }
    if ((bad == 0)); then
        echo "ok   $name: $ok answers, each its own model's"
    fi
    failures=$((failures + bad))
}

# session NAME STEPS...: one psql, one backend; a step is "ROLE LABEL MODEL SOURCE KINDS"
session() {
    local name=$1 step role label model src kinds
    shift
    {
        echo "$serial"
        for step in "$@"; do
            IFS=';' read -r role label model src kinds <<<"$step"
            echo "SET ROLE \"$role\";"
            probe "$label" "$model" "$src" "$kinds"
            echo "RESET ROLE;"
        done
    } | q >"$work/$name.out" 2>&1 || { cat "$work/$name.out"; fail "session $name failed"; }
    check "$name" "$work/$name.out"
}

bob_kinds="predict recommend"
echo "== one backend per case, shared by bob and alice as in a connection pool"
session "(1) B table, then A table" \
    "$bob;bob;B;$b_table;$bob_kinds" \
    "$alice;alice;A;$a_table;$all_kinds"
session "(2) B table, then A in memory" \
    "$bob;bob;B;$b_table;$bob_kinds" \
    "$alice;alice;A;$a_mem;$all_kinds"
session "(3) A table, then B table, then A table" \
    "$alice;alice first;A;$a_table;$all_kinds" \
    "$bob;bob;B;$b_table;$bob_kinds" \
    "$alice;alice again;A;$a_table;$all_kinds"
session "(4) B in memory, then A in memory" \
    "$bob;bob;B;$b_mem;$bob_kinds" \
    "$alice;alice;A;$a_mem;$all_kinds"

echo "== (5) one query over both models, each copied in memory per row"
# One call site sees A's and B's bytes in turn, likely at the same address
# (each row's copy lives in memory reset between rows).
q >"$work/one_query.out" 2>&1 <<'SQL' || { cat "$work/one_query.out"; fail "the query over both models failed"; }
SET max_parallel_workers_per_gather = 0;
SELECT 'one query|' || which || '|predict|' || string_agg(format('%s:%s=%s', u, i, p), ' ' ORDER BY u, i)
FROM (SELECT s.s_no, s.which, x.u, x.i, dmf_predict(s.model || ''::bytea, x.u, x.i) AS p
      FROM (SELECT 1 AS s_no, 'A' AS which, model FROM alice_models
            UNION ALL SELECT 2, 'B', model FROM bob_models
            UNION ALL SELECT 3, 'A', model FROM alice_models) s,
           LATERAL (VALUES (1, 1), (2, 50), (7, 40), (42, 99), (150, 3), (299, 150), (300, 77)) x(u, i)
      OFFSET 0) r
GROUP BY s_no, which
ORDER BY s_no;
SQL
check "(5) A, B, A in one query" "$work/one_query.out"

echo "== (6) B cached, then dmf_user_factor over A in a parallel plan"
# Without the leader in the scan, every state reaches it serialized by a
# worker (a fresh backend that decodes A itself) and is looked up by header.
parallel="SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;"
for variant in table memory; do
    if [[ $variant == table ]]; then src=$a_table; else src=$a_mem; fi
    plan_sql=$(probe x A "$src" aggregate | sed 's/^SELECT /EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT /')
    {
        echo "SET ROLE \"$bob\";"
        probe bob B "$b_table" "$bob_kinds"
        echo "RESET ROLE;"
        echo "SET ROLE \"$alice\";"
        echo "$parallel"
        echo "$plan_sql"
        probe "alice parallel" A "$src" aggregate
        echo "RESET ROLE;"
    } | q >"$work/p_$variant.raw" 2>&1 || { cat "$work/p_$variant.raw"; fail "parallel session ($variant) failed"; }
    grep -q 'Partial' "$work/p_$variant.raw" ||
        { cat "$work/p_$variant.raw"; fail "(6) the plan has no partial aggregate"; }
    launched=$(sed -n 's/.*Workers Launched: \([0-9]*\).*/\1/p' "$work/p_$variant.raw" | head -n 1)
    [[ -n "$launched" && "$launched" -gt 0 ]] ||
        { cat "$work/p_$variant.raw"; fail "(6) no parallel worker was launched"; }
    echo "    parallel plan with partial aggregates, $launched workers launched"
    grep -E '^[a-z ]+\|[AB]\|' "$work/p_$variant.raw" >"$work/p_$variant.out" || true
    check "(6) B table, then A $variant in a parallel aggregate" "$work/p_$variant.out"
done

if ((failures > 0)); then
    fail "$failures answers came from the wrong model's decoding"
fi
echo "ok"
