#!/usr/bin/env bash
# dmf in shared_preload_libraries: the postmaster stays single-threaded, and
# a backend runs one thread outside training.
#
# OpenBLAS starts its thread pool (a thread per core) as it is loaded, and
# its fork handler stops the pool before every fork: a postmaster that loaded
# it would be multithreaded until its first fork, which a later thread count
# does not show.  So besides counting threads, the test checks that OpenBLAS
# is not mapped into the postmaster at all (dmf loads it on first use in a
# backend, src/blas.c).
#
# Builds the working tree into a private copy of the PostgreSQL installation
# (test/lib/private_tree.sh; the system's directories are not touched) and
# starts a cluster of its own (port from 54800) that preloads dmf.so:
#   - the postmaster maps the private dmf.so, not OpenBLAS, and has 1 thread
#   - in one session: a fresh backend has 1 thread and no OpenBLAS; after
#     dmf_predict and dmf_info still none; after dmf_refresh and a factor
#     aggregate (dense layers: OpenBLAS loaded) 1 thread; during a dmf_train
#     with "threads": 2 more than one, after it 1 again; a second training
#     with the same options (the pool started anew) predicts the same
#   - afterwards the postmaster still has 1 thread and no OpenBLAS, and has
#     not restarted
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$here/../lib/cluster.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/private_tree.sh
source "$here/../lib/private_tree.sh"

fail() {
    echo "FAILED: $*"
    exit 1
}

dmf_install_deps
pgc="$(dmf_pg_config)"
root="$(mktemp -d)"
# the cluster runs the tree's binaries: stop it before deleting them
dmf_at_exit "dmf_cluster_stop; rm -rf '$root'"

start=$SECONDS
echo "== building dmf into a private copy of PostgreSQL in $root"
dmf_private_tree "$root"
dmf_private_source "$root/src"
dmf_private_install "$root/src" "$root" >"$root/build.log" 2>&1 || { cat "$root/build.log"; fail "build"; }
private_so="$root$("$pgc" --pkglibdir)/dmf.so"

dmf_private_cluster_start "$root" "shared_preload_libraries = 'dmf'" "jit = off"
pm=$(dmf_postmaster_pid)
started_before=$(psql -X -A -t -q -d postgres -c "SELECT pg_postmaster_start_time()")

check_postmaster() {
    local when=$1 so blas threads
    so=$(dmf_mapped "$pm" '/dmf\.so$')
    blas=$(dmf_mapped "$pm" 'openblas')
    threads=$(dmf_threads "$pm")
    echo "postmaster $pm $when: $threads thread(s), dmf.so ${so:-not mapped}, OpenBLAS ${blas:-not mapped}"
    [[ "$so" == "$private_so" ]] || fail "the postmaster does not map the private $private_so"
    [[ -z "$blas" ]] || fail "OpenBLAS is loaded in the postmaster: its thread pool started there"
    ((threads == 1)) || fail "the postmaster runs $threads threads"
}
check_postmaster "after start"

psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
CREATE EXTENSION dmf;
CREATE TABLE r AS
SELECT u::bigint AS user_id, i::bigint AS item_id, (1 + (u * 7 + i * 3) % 5)::float8 AS rating
FROM generate_series(1, 600) u, generate_series(1, 300) i WHERE (u + i) % 3 = 0;
-- two dense layers per branch, so refreshing and aggregating call sgemm
CREATE TABLE models AS
SELECT dmf_train('r', options => '{"layers": [64, 32], "dim": 8, "epochs": 1, "threads": 1}') AS model;
SQL

# One session, watched from here; it reports "RESULT key=value" lines, its
# thread counts are the backend's own (/proc/self is the backend).
app="dmf_t045_$$"
out="$root/session.out"
psql -X -q -A -t -v ON_ERROR_STOP=1 -v app="$app" -d postgres >"$out" 2>&1 <<'SQL' &
\set opts '{"layers": [64, 32], "dim": 8, "epochs": 8, "seed": 1, "threads": 2, "validation_fraction": 0}'
SET application_name = :'app';
SELECT count(*) AS n FROM pg_ls_dir('/proc/self/task') \gset
\echo RESULT fresh_threads=:n
SELECT pg_read_file('/proc/self/maps') ~ 'openblas' AS b \gset
\echo RESULT fresh_blas=:b
SELECT (regexp_match(pg_read_file('/proc/self/maps'), '\s(/\S*/dmf\.so)\n'))[1] AS so \gset
\echo RESULT so=:so

SELECT count(dmf_predict(model, user_id, item_id)) > 0 AND bool_and(dmf_info(model) IS NOT NULL) AS ok
FROM models, r \gset
\echo RESULT predicted=:ok
SELECT count(*) AS n FROM pg_ls_dir('/proc/self/task') \gset
\echo RESULT predict_threads=:n
SELECT pg_read_file('/proc/self/maps') ~ 'openblas' AS b \gset
\echo RESULT predict_blas=:b

SELECT length(dmf_refresh(model, 'r')) > 0 AS ok FROM models \gset
\echo RESULT refreshed=:ok
SELECT count(*) = 600 AS ok FROM (
    SELECT dmf_user_factor(m.model, r.item_id, r.rating) AS f
    FROM models m, r GROUP BY r.user_id) x WHERE f IS NOT NULL \gset
\echo RESULT aggregated=:ok
SELECT count(*) AS n FROM pg_ls_dir('/proc/self/task') \gset
\echo RESULT refresh_threads=:n
SELECT pg_read_file('/proc/self/maps') ~ 'openblas' AS b \gset
\echo RESULT refresh_blas=:b

CREATE TEMP TABLE t1 AS SELECT dmf_train('r', options => :'opts') AS model;
SELECT count(*) AS n FROM pg_ls_dir('/proc/self/task') \gset
\echo RESULT train_threads=:n
CREATE TEMP TABLE t2 AS SELECT dmf_train('r', options => :'opts') AS model;
SELECT count(*) AS n FROM pg_ls_dir('/proc/self/task') \gset
\echo RESULT train2_threads=:n
SELECT dmf_info(model)->>'threads_used' AS n FROM t1 \gset
\echo RESULT threads_used=:n
SELECT bool_and(dmf_predict(t1.model, user_id, item_id) = dmf_predict(t2.model, user_id, item_id)) AS same
FROM t1, t2, r \gset
\echo RESULT same=:same
SQL
session=$!

# The backend's thread count while it runs, sampled from /proc.
backend=""
max_threads=0
while kill -0 "$session" 2>/dev/null; do
    if [[ -z "$backend" ]]; then
        backend=$(psql -X -A -t -q -d postgres -c \
            "SELECT pid FROM pg_stat_activity WHERE application_name = '$app'" || true)
    elif [[ -d "/proc/$backend/task" ]]; then
        n=$(dmf_threads "$backend" 2>/dev/null || echo 0)
        ((n <= max_threads)) || max_threads=$n
    fi
    sleep 0.05
done
wait "$session" || { cat "$out"; fail "the session failed"; }
sed 's/^/    /' "$out"

value() {
    sed -n "s/^RESULT $1=//p" "$out" | tail -n 1
}
[[ "$(value so)" == "$private_so" ]] || fail "the backend maps $(value so), not $private_so"
[[ "$(value predicted)" == t && "$(value refreshed)" == t && "$(value aggregated)" == t ]] ||
    fail "predicting, refreshing or aggregating did not work"
[[ "$(value refresh_blas)" == t ]] || fail "OpenBLAS was not loaded by dmf_refresh: the thread count below says nothing"
for k in fresh_threads predict_threads refresh_threads train_threads train2_threads; do
    [[ "$(value $k)" == 1 ]] || fail "$k: the backend runs $(value $k) threads, not 1"
done
echo "backend $backend: 1 thread fresh, after predicting (OpenBLAS loaded: $(value predict_blas)), after refreshing (loaded: $(value refresh_blas)) and after each training"
((max_threads >= 2)) || fail "no more than $max_threads thread seen during the trainings with \"threads\": 2"
echo "backend $backend: up to $max_threads threads while training (threads_used $(value threads_used))"
[[ "$(value same)" == t ]] || fail "the second training (OpenBLAS's pool restarted) predicts differently"
echo "a second training with the same options predicts the same"

check_postmaster "after the session"
started_after=$(psql -X -A -t -q -d postgres -c "SELECT pg_postmaster_start_time()")
[[ "$started_after" == "$started_before" ]] || fail "the server restarted"
echo "server not restarted; $((SECONDS - start)) s"
echo "ok"
