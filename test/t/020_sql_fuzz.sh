#!/usr/bin/env bash
# Corrupted models through every SQL function that takes a model: always an
# ERROR with the documented SQLSTATE, never a crash.
#
# In one session: train a small model, then pass thousands of mutated copies
# (every truncation up to 400 bytes and random longer ones, every single-bit
# flip of the first 400 bytes, random byte changes in the payload, random
# bytes, the empty value, other format versions) to dmf_predict,
# dmf_predict_discrete, dmf_info, dmf_refresh, dmf_user_factor and
# dmf_item_factor (the stored-factor functions and the aggregates),
# dmf_score, dmf_score_discrete, dmf_recommend (both forms, with candidates
# and cold start), dmf_evaluate, dmf_evaluate_ranking and the serving
# functions (dmf_popular_items, dmf_similar_items, dmf_similar_users,
# dmf_recommend_users, dmf_user_factors, dmf_item_factors, dmf_explain).  Each must fail with XX001 (invalid dmf model), or 22023 for
# a format version this build cannot read.
#
# Then mutations that get past the checksums: a tiny model is changed and its
# checksums recomputed (in SQL), so the structural validation is what
# must catch it.  Targeted changes (counts, dim, flags, section table, missing
# sections, ids, input positions, anchors, fold-in settings, branch shapes,
# quantizer, a NaN or infinite weight, bias, factor, anchor, lambda or
# boundary) must give XX001; metadata that is not a JSON object must give
# XX001 in every function; a model whose quantizer section is cut off is valid
# and must work (the discrete functions say 0A000), as must other valid
# changes (fold-in settings at their limits, zero anchors); random re-sealed
# byte changes, of a float32 model and of one stored in bfloat16 (format 3),
# may be accepted or rejected, but never crash and never raise an internal
# error (XX000).
#
# The backend's model cache: a re-sealed header change that keeps the model
# id, size and payload checksum of a model just used must be decoded, not
# served from the cache (XX001), and so must a per-row in-memory value whose
# payload byte changed at the address, with the header, of the intact value
# the same call site saw just before.
#
# Forged models that decode must not refresh into models dmf cannot read:
# weights so large that the branches overflow, and a refresh count at the
# top of bigint, are XX001 from dmf_refresh.
#
# Finally the server must not have restarted and the session must still be
# the same backend.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$here/../lib/cluster.sh"

dmf_use_server

admin_db=${PGDATABASE:-postgres}
db="dmf_t020_$$"
dmf_at_exit "psql -X -q -d '$admin_db' -c 'DROP DATABASE IF EXISTS $db WITH (FORCE)' >/dev/null 2>&1"
# UTF8, so metadata that is not valid UTF-8 is invalid whatever the cluster's default
psql -X -q -v ON_ERROR_STOP=1 -d "$admin_db" \
    -c "CREATE DATABASE $db TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"

started_before=$(psql -X -A -t -q -d "$admin_db" -c "SELECT pg_postmaster_start_time()")
echo "server started at $started_before"

start=$SECONDS
psql -X -q -v ON_ERROR_STOP=1 -v reseal_sql="$DMF_ROOT/test/lib/reseal.sql" -d "$db" <<'SQL'
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dmf;
SELECT setseed(0.2) \g /dev/null

\echo == training a 200 x 100 model (layers [32], dim 8) and a tiny one
-- low-rank-ish ratings 1..5 on about 30% of the cells
CREATE TABLE ratings AS
SELECT u::bigint AS user_id, i::bigint AS item_id,
       greatest(1, least(5, round(3 + 1.6 * (sin(u * 0.37) * cos(i * 0.91)
                                           + cos(u * 1.3) * sin(i * 0.23)))))::float8 AS rating
FROM generate_series(1, 200) u, generate_series(1, 100) i
WHERE abs(hashint4(u * 1000 + i)) % 10 < 3;
CREATE TABLE tiny_ratings AS
SELECT user_id, item_id, rating FROM ratings WHERE user_id <= 30 AND item_id <= 12;

CREATE TABLE models (name text PRIMARY KEY, model bytea);
INSERT INTO models
SELECT 'base', dmf_train('ratings', options => '{"layers":[32],"dim":8,"epochs":3,"seed":1}');
INSERT INTO models
SELECT 'tiny', dmf_train('tiny_ratings', options => '{"layers":[4],"dim":2,"epochs":2,"seed":1}');
-- the same stored compact (bfloat16, format 3)
INSERT INTO models
SELECT 'tiny_compact', dmf_train('tiny_ratings',
                                 options => '{"layers":[4],"dim":2,"epochs":2,"seed":1,"storage":"bfloat16"}');
SELECT name, length(model) AS bytes, dmf_info(model)->'levels' AS levels FROM models ORDER BY name;

CREATE TEMP TABLE session0 AS
SELECT pg_backend_pid() AS pid, pg_postmaster_start_time() AS started;

-- Factors to score with (from the intact models), ids to look up.
CREATE TABLE probe AS
SELECT name, model,
       (SELECT min(user_id) FROM ratings) AS user_id,
       (SELECT min(item_id) FROM ratings) AS item_id,
       dmf_user_factor(model, (SELECT min(user_id) FROM ratings)) AS uf,
       dmf_item_factor(model, (SELECT min(item_id) FROM ratings)) AS itf,
       CASE name WHEN 'base' THEN 'ratings'::regclass ELSE 'tiny_ratings'::regclass END AS rel
FROM models;

-- The functions, in the order try_all reports them.
CREATE FUNCTION fn_names() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
SELECT ARRAY['dmf_predict', 'dmf_predict_discrete', 'dmf_info', 'dmf_refresh',
             'dmf_user_factor(model,id)', 'dmf_user_factor(agg)',
             'dmf_item_factor(model,id)', 'dmf_item_factor(agg)',
             'dmf_score', 'dmf_score_discrete', 'dmf_recommend',
             'dmf_recommend(factor)', 'dmf_evaluate', 'dmf_evaluate_ranking',
             'dmf_recommend(candidates)', 'dmf_recommend(cold_start)', 'dmf_popular_items',
             'dmf_similar_items', 'dmf_similar_users', 'dmf_recommend_users',
             'dmf_user_factors', 'dmf_item_factors', 'dmf_explain']
$$;

-- Calls every model-taking function on v; 'ok' or the SQLSTATE of each.
CREATE FUNCTION try_all(v bytea, p probe) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    codes text[] := '{}';
    d float8;
    j jsonb;
    b bytea;
    f real[];
BEGIN
    BEGIN d := dmf_predict(v, p.user_id, p.item_id); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN d := dmf_predict_discrete(v, p.user_id, p.item_id); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN j := dmf_info(v); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN b := dmf_refresh(v, p.rel); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN f := dmf_user_factor(v, p.user_id); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN
        SELECT dmf_user_factor(v, x.id, x.r) INTO f
        FROM (VALUES (p.item_id, 3::float8), (p.item_id + 1, 4::float8)) x(id, r);
        codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN f := dmf_item_factor(v, p.item_id); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN
        SELECT dmf_item_factor(v, x.id, x.r) INTO f
        FROM (VALUES (p.user_id, 3::float8), (p.user_id + 1, 4::float8)) x(id, r);
        codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN d := dmf_score(v, p.uf, p.itf); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN d := dmf_score_discrete(v, p.uf, p.itf); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN SELECT sum(score) INTO d FROM dmf_recommend(v, p.user_id, 5); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN SELECT sum(score) INTO d FROM dmf_recommend(v, p.uf, 5, ARRAY[p.item_id]); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN SELECT rmse INTO d FROM dmf_evaluate(v, p.rel); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN SELECT ndcg INTO d FROM dmf_evaluate_ranking(v, p.rel); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN SELECT sum(score) INTO d FROM dmf_recommend(v, p.user_id, 5, false, ARRAY[p.item_id, p.item_id + 1]);
        codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN SELECT count(*) INTO d FROM dmf_recommend(v, -1, 5, false, cold_start => true); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN SELECT sum(users) INTO d FROM dmf_popular_items(v, 5); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN SELECT sum(similarity) INTO d FROM dmf_similar_items(v, p.item_id, 5); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN SELECT sum(similarity) INTO d FROM dmf_similar_users(v, p.user_id, 5); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN SELECT sum(score) INTO d FROM dmf_recommend_users(v, p.item_id, 5); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN SELECT count(*) INTO d FROM dmf_user_factors(v); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN SELECT count(*) INTO d FROM dmf_item_factors(v); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    BEGIN SELECT sum(influence) INTO d FROM dmf_explain(v, p.user_id, p.item_id, 3, p.rel); codes := codes || 'ok'::text;
    EXCEPTION WHEN OTHERS THEN codes := codes || SQLSTATE::text; END;
    RETURN codes;
END $$;

CREATE TABLE results (cat text, variant int, fn text, code text);
CREATE FUNCTION record(cat text, variant int, v bytea, model_name text) RETURNS void
LANGUAGE sql AS $$
INSERT INTO results
SELECT cat, variant, f.fn, f.code
FROM probe p, unnest(fn_names(), try_all(v, p)) f(fn, code)
WHERE p.name = model_name
$$;

\echo == sanity: the intact models work with every function
DO $$
DECLARE p probe;
BEGIN
    FOR p IN SELECT * FROM probe LOOP
        IF p.uf IS NULL OR p.itf IS NULL THEN
            RAISE EXCEPTION 'model %: no factor for user % or item %', p.name, p.user_id, p.item_id;
        END IF;
        IF try_all(p.model, p) <> array_fill('ok'::text, ARRAY[cardinality(fn_names())]) THEN
            RAISE EXCEPTION 'model %: the intact model fails: %', p.name,
                array_to_string(try_all(p.model, p), ',');
        END IF;
    END LOOP;
END $$;

\echo == corrupted copies of the 200 x 100 model through every model-taking function
-- every truncation up to 400 bytes (the header is 128), and 200 random longer ones
DO $$
DECLARE m bytea := (SELECT model FROM models WHERE name = 'base'); n int; k int := 0;
BEGIN
    FOR n IN SELECT g FROM generate_series(0, 400) g
             UNION SELECT 401 + floor(random() * (length(m) - 402))::int FROM generate_series(1, 200)
             ORDER BY 1 LOOP
        CONTINUE WHEN n >= length(m);
        k := k + 1;
        PERFORM record('truncated', k, substring(m FROM 1 FOR n), 'base');
    END LOOP;
END $$;

-- every single-bit flip of the first 400 bytes (header and section table)
DO $$
DECLARE m bytea := (SELECT model FROM models WHERE name = 'base');
BEGIN
    FOR b IN 0 .. 8 * 400 - 1 LOOP
        PERFORM record('bit flip', b, set_bit(m, b, 1 - get_bit(m, b)), 'base');
    END LOOP;
END $$;

-- 1000 random byte changes in the payload (1 to 4 bytes each)
DO $$
DECLARE m bytea := (SELECT model FROM models WHERE name = 'base'); v bytea; p int;
BEGIN
    FOR k IN 1 .. 1000 LOOP
        v := m;
        FOR r IN 1 .. 1 + floor(random() * 4)::int LOOP
            p := 400 + floor(random() * (length(m) - 400))::int;
            v := set_byte(v, p, get_byte(v, p) # (1 + floor(random() * 255)::int));
        END LOOP;
        PERFORM record('payload bytes', k, v, 'base');
    END LOOP;
END $$;

-- random bytes: pure noise, noise behind the magic and version, the real
-- header with a noise payload of the right length, and the empty value
CREATE FUNCTION noise(n int) RETURNS bytea LANGUAGE sql VOLATILE AS $$
SELECT coalesce(decode(string_agg(lpad(to_hex(floor(random() * 256)::int), 2, '0'), ''), 'hex'), '')
FROM generate_series(1, n)
$$;
DO $$
DECLARE m bytea := (SELECT model FROM models WHERE name = 'base');
BEGIN
    PERFORM record('random', 0, ''::bytea, 'base');
    FOR k IN 1 .. 40 LOOP
        PERFORM record('random', k, noise(floor(random() * 2000)::int), 'base');
    END LOOP;
    FOR k IN 41 .. 60 LOOP
        PERFORM record('random', k, substring(m FROM 1 FOR 6) || noise(floor(random() * 2000)::int), 'base');
    END LOOP;
    FOR k IN 61 .. 70 LOOP
        PERFORM record('random', k, substring(m FROM 1 FOR 128) || noise(length(m) - 128), 'base');
    END LOOP;
    PERFORM record('random', 71, noise(length(m)), 'base');
END $$;

-- other format versions (bytes 4-5): 22023, not XX001
DO $$
DECLARE m bytea := (SELECT model FROM models WHERE name = 'base');
BEGIN
    PERFORM record('version', 1, set_byte(m, 4, 0), 'base');
    PERFORM record('version', 2, set_byte(m, 4, 4), 'base');
    PERFORM record('version', 3, set_byte(m, 5, 1), 'base');
    PERFORM record('version', 4, set_byte(set_byte(m, 4, 255), 5, 255), 'base');
    PERFORM record('version', 5, substring(set_byte(m, 4, 4) FROM 1 FOR 8), 'base');
END $$;

\echo == re-sealed mutations of the tiny model (every checksum recomputed)
-- u32, put_u32, put_u64, put_f64, crc32c, reseal, sect, drop_section, put_meta
\i :reseal_sql

DO $$
DECLARE
    t bytea := (SELECT model FROM models WHERE name = 'tiny');
BEGIN
    IF reseal(t) <> t THEN
        RAISE EXCEPTION 'the SQL CRC32C does not reproduce the model''s checksums';
    END IF;
END $$;

CREATE TABLE sealed (n serial, cat text, what text, v bytea);
DO $$
DECLARE
    t bytea := (SELECT model FROM models WHERE name = 'tiny');
    L int := length(t);
    ns int := u32(t, 68);
    uids record := sect(t, 2);
    uin record := sect(t, 3);
    ushape record := sect(t, 8);
    q record := sect(t, 12);
    meta record := sect(t, 1);
    uanch record := sect(t, 13);
    ianch record := sect(t, 14);
    fold record := sect(t, 15);
    rated record := sect(t, 16);
    uw record := sect(t, 9);   -- the user branch's weights: W0 b0 W1 b1
    iw record := sect(t, 11);  -- the item branch's
    e2 int := 128 + 24 * 2;    -- the third section table entry
    last int := 128 + 24 * (ns - 1);    -- the last section table entry
    kind_end int := 17;        -- the first unknown section kind
    nu int := u32(t, 52);      -- users: USER_RATED has nu + 1 int64 offsets
    nl int;
BEGIN
    -- META .. ITEM_FACTORS, USER/ITEM_ANCHORS, FOLD_IN, USER_RATED, the two
    -- branches' shapes and weights, QUANTIZER (the tiny model has levels)
    IF ns <> 16 THEN
        RAISE EXCEPTION 'expected 16 sections in the tiny model, found %', ns;
    END IF;
    -- the cases below that lower the section count drop the last entry
    IF q.entry <> last THEN
        RAISE EXCEPTION 'expected the quantizer section last in the table, found it at %', q.entry;
    END IF;
    IF fold.len <> 16 OR uanch.len <> 4 * u32(t, 60) * u32(t, 44)
       OR ianch.len <> 4 * u32(t, 64) * u32(t, 44) THEN
        RAISE EXCEPTION 'unexpected anchor or fold-in section sizes: % % %', uanch.len, ianch.len, fold.len;
    END IF;
    -- QUANTIZER: n_levels, lambda, levels[n_levels], boundaries[n_levels + 1]
    nl := (q.len / 8 - 3) / 2;
    INSERT INTO sealed (cat, what, v) VALUES
    ('sealed: invalid', 'total size + 8', put_u64(t, 24, L + 8)),
    ('sealed: invalid', 'total size - 8', put_u64(t, 24, L - 8)),
    ('sealed: invalid', 'header size 127', set_byte(t, 6, 127)),
    ('sealed: invalid', 'unknown flag', put_u32(t, 40, u32(t, 40) | 32768)),
    ('sealed: invalid', 'dim 0', put_u32(t, 44, 0)),
    ('sealed: invalid', 'dim + 1', put_u32(t, 44, u32(t, 44) + 1)),
    ('sealed: invalid', 'dim 4097', put_u32(t, 44, 4097)),
    ('sealed: invalid', 'dim -1', put_u32(t, 44, 4294967295)),
    ('sealed: invalid', 'activation 4', put_u32(t, 48, 4)),
    ('sealed: invalid', 'activation -1', put_u32(t, 48, 4294967295)),
    ('sealed: invalid', 'users + 1', put_u32(t, 52, u32(t, 52) + 1)),
    ('sealed: invalid', 'users < training users', put_u32(t, 52, u32(t, 60) - 1)),
    ('sealed: invalid', 'users -1', put_u32(t, 52, 4294967295)),
    ('sealed: invalid', 'items + 1', put_u32(t, 56, u32(t, 56) + 1)),
    ('sealed: invalid', 'training users 0', put_u32(t, 60, 0)),
    ('sealed: invalid', 'training users - 1', put_u32(t, 60, u32(t, 60) - 1)),
    ('sealed: invalid', 'training items + 1', put_u32(t, 64, u32(t, 64) + 1)),
    ('sealed: invalid', 'sections 0', put_u32(t, 68, 0)),
    ('sealed: invalid', 'sections 33', put_u32(t, 68, 33)),
    ('sealed: invalid', 'sections 2^31', put_u32(t, 68, 2147483648)),
    ('sealed: invalid', 'rating_min = rating_max', put_f64(t, 72, 5)),
    ('sealed: invalid', 'rating_min NaN', put_f64(t, 72, 'NaN')),
    ('sealed: invalid', 'rating_max infinite', put_f64(t, 80, 'Infinity')),
    ('sealed: invalid', 'reserved byte', set_byte(t, 100, 1)),
    ('sealed: invalid', 'section kind duplicated', put_u32(t, e2, 1)),
    ('sealed: invalid', 'section kind 0', put_u32(t, e2, 0)),
    ('sealed: invalid', 'section kind 17 (unknown)', put_u32(t, e2, kind_end)),
    ('sealed: invalid', 'section kind 2^32 - 1', put_u32(t, e2, 4294967295)),
    ('sealed: invalid', 'section kind 13 (user anchors twice)', put_u32(t, e2, 13)),
    ('sealed: invalid', 'section kind 15 (fold-in twice)', put_u32(t, e2, 15)),
    ('sealed: invalid', 'section padding field', put_u32(t, e2 + 4, 1)),
    ('sealed: invalid', 'section offset - 8 (overlap)', put_u64(t, e2 + 8, u32(t, e2 + 8) - 8)),
    ('sealed: invalid', 'section offset + 1 (misaligned)', put_u64(t, e2 + 8, u32(t, e2 + 8) + 1)),
    ('sealed: invalid', 'section offset past the end', put_u64(t, e2 + 8, L + 8)),
    ('sealed: invalid', 'section offset 2^63', put_u64(t, e2 + 8, 9223372036854775808)),
    ('sealed: invalid', 'section length + 4', put_u64(t, e2 + 16, u32(t, e2 + 16) + 4)),
    ('sealed: invalid', 'section length 2^64 - 8', put_u64(t, e2 + 16, 18446744073709551608)),
    ('sealed: invalid', 'last section runs past the end', put_u64(t, last + 16, L)),
    ('sealed: invalid', 'user ids section missing', drop_section(t, 2)),
    ('sealed: invalid', 'user anchors section missing', drop_section(t, 13)),
    ('sealed: invalid', 'item anchors section missing', drop_section(t, 14)),
    ('sealed: invalid', 'fold-in section missing', drop_section(t, 15)),
    ('sealed: invalid', 'item weights section missing', drop_section(t, 11)),
    ('sealed: invalid', 'user anchors length - 4', put_u64(t, uanch.entry + 16, uanch.len - 4)),
    ('sealed: invalid', 'user anchors length - 8 (one dim fewer)', put_u64(t, uanch.entry + 16, uanch.len - 8)),
    ('sealed: invalid', 'item anchors length 0', put_u64(t, ianch.entry + 16, 0)),
    ('sealed: invalid', 'item anchors length + 8 (overlap)', put_u64(t, ianch.entry + 16, ianch.len + 8)),
    ('sealed: invalid', 'anchor sections swapped (kinds 13 and 14)',
        put_u32(put_u32(t, uanch.entry, 14), ianch.entry, 13)),
    ('sealed: invalid', 'fold-in length 8', put_u64(t, fold.entry + 16, 8)),
    ('sealed: invalid', 'fold-in length 0', put_u64(t, fold.entry + 16, 0)),
    ('sealed: invalid', 'fold-in steps -1', put_f64(t, fold.off, -1)),
    ('sealed: invalid', 'fold-in steps 10001', put_f64(t, fold.off, 10001)),
    ('sealed: invalid', 'fold-in steps 2.5', put_f64(t, fold.off, 2.5)),
    ('sealed: invalid', 'fold-in steps NaN', put_f64(t, fold.off, 'NaN')),
    ('sealed: invalid', 'fold-in steps infinite', put_f64(t, fold.off, 'Infinity')),
    ('sealed: invalid', 'fold-in steps 2^31', put_f64(t, fold.off, 2147483648)),
    ('sealed: invalid', 'fold-in rate -0.5', put_f64(t, fold.off + 8, -0.5)),
    ('sealed: invalid', 'fold-in rate 100.5', put_f64(t, fold.off + 8, 100.5)),
    ('sealed: invalid', 'fold-in rate NaN', put_f64(t, fold.off + 8, 'NaN')),
    ('sealed: invalid', 'fold-in rate infinite', put_f64(t, fold.off + 8, 'Infinity')),
    ('sealed: invalid', 'user ids not ascending',
        overlay(t PLACING substring(t FROM uids.off + 9 FOR 8) || substring(t FROM uids.off + 1 FOR 8)
              FROM uids.off + 1)),
    ('sealed: invalid', 'user ids equal',
        overlay(t PLACING substring(t FROM uids.off + 1 FOR 8) FROM uids.off + 9)),
    ('sealed: invalid', 'user input duplicated', put_u32(t, uin.off + 4, u32(t, uin.off))),
    ('sealed: invalid', 'user input out of range', put_u32(t, uin.off, u32(t, 60))),
    ('sealed: invalid', 'user input -2', put_u32(t, uin.off, 4294967294)),
    ('sealed: invalid', 'user input all -1',
        overlay(t PLACING decode(repeat('ff', uin.len), 'hex') FROM uin.off + 1)),
    ('sealed: invalid', 'branch layers 0', put_u32(t, ushape.off, 0)),
    ('sealed: invalid', 'branch layers 9', put_u32(t, ushape.off, 9)),
    ('sealed: invalid', 'branch layers -1', put_u32(t, ushape.off, 4294967295)),
    ('sealed: invalid', 'branch input width + 1', put_u32(t, ushape.off + 4, u32(t, ushape.off + 4) + 1)),
    ('sealed: invalid', 'branch hidden width 0', put_u32(t, ushape.off + 8, 0)),
    ('sealed: invalid', 'branch hidden width 65537', put_u32(t, ushape.off + 8, 65537)),
    ('sealed: invalid', 'branch hidden width + 1', put_u32(t, ushape.off + 8, u32(t, ushape.off + 8) + 1)),
    ('sealed: invalid', 'branch output width + 1', put_u32(t, ushape.off + 12, u32(t, ushape.off + 12) + 1)),
    ('sealed: invalid', 'quantizer 1 level', put_f64(t, q.off, 1)),
    ('sealed: invalid', 'quantizer 1.5 levels', put_f64(t, q.off, 1.5)),
    ('sealed: invalid', 'quantizer 1025 levels', put_f64(t, q.off, 1025)),
    ('sealed: invalid', 'quantizer NaN levels', put_f64(t, q.off, 'NaN')),
    ('sealed: invalid', 'quantizer one level fewer than its section', put_f64(t, q.off, nl - 1)),
    ('sealed: invalid', 'quantizer levels not ascending', put_f64(t, q.off + 24, 0.5)),
    ('sealed: invalid', 'quantizer level infinite', put_f64(t, q.off + 16, '-Infinity')),
    ('sealed: invalid', 'quantizer boundaries not ascending', put_f64(t, q.off + 16 + 8 * nl + 16, -100)),
    ('sealed: invalid', 'quantizer lambda NaN', put_f64(t, q.off + 8, 'NaN')),
    ('sealed: invalid', 'quantizer lambda infinite', put_f64(t, q.off + 8, 'Infinity')),
    ('sealed: invalid', 'quantizer lambda -1', put_f64(t, q.off + 8, -1)),
    ('sealed: invalid', 'quantizer boundary NaN', put_f64(t, q.off + 16 + 8 * nl + 8, 'NaN')),
    -- non-finite weights (float32 NaN 0x7fc00000, infinity 0x7f800000): a
    -- NaN user branch once decoded and refreshed into a model without factors
    ('sealed: invalid', 'user weights all NaN',
        overlay(t PLACING decode(repeat('0000c07f', uw.len / 4), 'hex') FROM uw.off + 1)),
    ('sealed: invalid', 'item weights all NaN',
        overlay(t PLACING decode(repeat('0000c07f', iw.len / 4), 'hex') FROM iw.off + 1)),
    ('sealed: invalid', 'a user weight NaN', put_u32(t, uw.off, 2143289344)),
    ('sealed: invalid', 'the user branch''s last bias NaN', put_u32(t, uw.off + uw.len - 4, 2143289344)),
    ('sealed: invalid', 'an item weight infinite', put_u32(t, iw.off + 4, 2139095040)),
    ('sealed: invalid', 'an item weight -infinite', put_u32(t, iw.off + iw.len - 4, 4286578688)),
    ('sealed: invalid', 'a user factor NaN', put_u32(t, (sect(t, 4)).off, 2143289344)),
    ('sealed: invalid', 'an item anchor NaN', put_u32(t, ianch.off, 2143289344)),
    ('sealed: invalid', 'discrete flag without quantizer',
        put_u32(put_u32(t, 68, ns - 1), 40, u32(t, 40) | 1)),
    ('sealed: invalid', 'metadata section of kind 17 (unknown)', put_u32(t, 128, kind_end)),
    ('sealed: invalid', 'metadata section of kind 12 (twice)', put_u32(t, 128, 12)),
    ('sealed: invalid', 'metadata section missing', drop_section(t, 1)),
    -- USER_RATED: int64 offsets[users + 1], then int32 item positions
    ('sealed: invalid', 'rated offsets start at 1', put_u64(t, rated.off, 1)),
    ('sealed: invalid', 'rated offsets descend', put_u64(t, rated.off + 8, 1000000)),
    ('sealed: invalid', 'rated offsets end past the items', put_u64(t, rated.off + 8 * nu, u32(t, rated.off + 8 * nu) + 1)),
    ('sealed: invalid', 'rated section length - 4', put_u64(t, rated.entry + 16, rated.len - 4)),
    ('sealed: invalid', 'rated section length - 2', put_u64(t, rated.entry + 16, rated.len - 2)),
    ('sealed: invalid', 'rated section shorter than its offsets', put_u64(t, rated.entry + 16, 8)),
    ('sealed: invalid', 'rated item out of range', put_u32(t, rated.off + 8 * (nu + 1), u32(t, 56))),
    ('sealed: invalid', 'rated item -1', put_u32(t, rated.off + 8 * (nu + 1), 4294967295)),
    ('sealed: invalid', 'rated items of a user not ascending',
        put_u32(t, rated.off + 8 * (nu + 1) + 4, u32(t, rated.off + 8 * (nu + 1)))),
    -- valid models: the checks must let them through
    ('sealed: valid', 'no quantizer section (no levels)', put_u32(t, 68, ns - 1)),
    ('sealed: valid', 'no quantizer section, its table entry dropped', drop_section(t, 12)),
    ('sealed: valid', 'no rated section (a model from 0.1.0)', drop_section(t, 16)),
    ('sealed: valid', 'quantizer lambda 0', put_f64(t, q.off + 8, 0)),
    ('sealed: valid', 'fold-in steps 0', put_f64(t, fold.off, 0)),
    ('sealed: valid', 'fold-in steps 10000', put_f64(t, fold.off, 10000)),
    ('sealed: valid', 'fold-in rate 0', put_f64(t, fold.off + 8, 0)),
    ('sealed: valid', 'fold-in rate 100', put_f64(t, fold.off + 8, 100)),
    ('sealed: valid', 'fold-in steps 1000, rate 100',
        put_f64(put_f64(t, fold.off, 1000), fold.off + 8, 100)),
    ('sealed: valid', 'user anchors all zero',
        overlay(t PLACING decode(repeat('00', uanch.len), 'hex') FROM uanch.off + 1)),
    ('sealed: valid', 'an item anchor changed (float32 0.5)', put_u32(t, ianch.off, 1056964608)),
    ('sealed: valid', 'metadata a smaller JSON object', put_meta(t, '{"x": [1, 2]}')),
    ('sealed: valid', 'metadata with whitespace around the object', put_meta(t, E' \t\n{}\r\n ')),
    ('sealed: valid', 'discrete flag', put_u32(t, 40, u32(t, 40) | 1)),
    ('sealed: valid', 'centred-input flag', put_u32(t, 40, u32(t, 40) # 2)),
    ('sealed: valid', 'another model id', set_byte(t, 8, get_byte(t, 8) # 255)),
    ('sealed: valid', 'a user factor changed (float32 0.5)', put_u32(t, (sect(t, 4)).off, 1056964608)),
    -- factors and anchors are unit vectors or zero: forged magnitudes are refused
    ('sealed: invalid', 'item anchors all 1e30',
        overlay(t PLACING decode(repeat('ca f2 49 71', ianch.len / 4), 'hex') FROM ianch.off + 1)),
    ('sealed: invalid', 'a user factor of 1.75', put_u32(t, (sect(t, 4)).off, 1071644672)),
    -- metadata that is not a JSON object: XX001 from every function
    ('sealed: bad metadata', 'metadata not JSON', set_byte(t, meta.off, 0)),
    ('sealed: bad metadata', 'metadata truncated JSON',
        set_byte(t, meta.off + meta.len - 1, get_byte(t, meta.off + meta.len - 1) # 1)),
    ('sealed: bad metadata', 'metadata empty', put_meta(t, '')),
    ('sealed: bad metadata', 'metadata only spaces', put_meta(t, '   ')),
    ('sealed: bad metadata', 'metadata a JSON array', put_meta(t, '[1, 2]')),
    ('sealed: bad metadata', 'metadata a JSON string', put_meta(t, '"{}"')),
    ('sealed: bad metadata', 'metadata a JSON number', put_meta(t, '42')),
    ('sealed: bad metadata', 'metadata null', put_meta(t, 'null')),
    ('sealed: bad metadata', 'metadata an object and more', put_meta(t, '{} {}')),
    ('sealed: bad metadata', 'metadata an unclosed object', put_meta(t, '{"a": 1')),
    ('sealed: bad metadata', 'metadata with a NUL byte', put_meta(t, '{"a": "\000"}'::bytea)),
    ('sealed: bad metadata', 'metadata not UTF-8', put_meta(t, '{"a": "\377\376"}'::bytea)),
    ('sealed: bad metadata', 'metadata with a NUL byte after the object', put_meta(t, '{}\000'::bytea));
    -- A model id of its own for each (bytes 12-15), so the backend's model
    -- cache, which knows a model by id, size and payload checksum, cannot
    -- answer from another variant's decoding: the decoder sees every change.
    UPDATE sealed SET v = reseal(put_u32(v, 12, u32(v, 12) # n));

    -- Header changes that keep the id, size and payload checksum of the
    -- intact model (checked separately below: the cache may answer them).
    INSERT INTO sealed (cat, what, v) VALUES
    ('cache', 'dim + 1', reseal(put_u32(t, 44, u32(t, 44) + 1))),
    ('cache', 'users + 1', reseal(put_u32(t, 52, u32(t, 52) + 1))),
    ('cache', 'sections 33', reseal(put_u32(t, 68, 33))),
    ('cache', 'discrete flag without quantizer', reseal(put_u32(put_u32(t, 68, ns - 1), 40, u32(t, 40) | 1))),
    ('cache', 'reserved byte', reseal(set_byte(t, 100, 1))),
    -- valid, and told apart from the intact model: no levels, so the
    -- discrete functions say 0A000 where the intact model answers
    ('cache valid', 'no quantizer section', reseal(put_u32(t, 68, ns - 1)));
END $$;

DO $$
DECLARE s record; k int := 0;
BEGIN
    FOR s IN SELECT * FROM sealed WHERE cat NOT LIKE 'cache%' LOOP
        k := k + 1;
        PERFORM record(s.cat || ': ' || s.what, k, s.v, 'tiny');
    END LOOP;
END $$;

-- n random re-sealed changes of 1 to 3 bytes (header, section table or
-- payload) of a model: accepted or rejected, never a crash or an internal error
CREATE FUNCTION random_resealed(cat text, model_name text, n int, id_salt int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE t bytea := (SELECT model FROM models WHERE name = model_name); v bytea; p int;
BEGIN
    FOR k IN 1 .. n LOOP
        v := t;
        FOR r IN 1 .. 1 + floor(random() * 3)::int LOOP
            -- half of the changes in the first 420 bytes: header and table
            p := CASE WHEN random() < 0.5 THEN floor(random() * 420)::int
                      ELSE floor(random() * length(t))::int END;
            v := set_byte(v, p, get_byte(v, p) # (1 << floor(random() * 8)::int));
        END LOOP;
        -- a model id of its own, so the decoder, not the cache, judges it
        PERFORM record(cat, k, reseal(put_u32(v, 12, u32(v, 12) # (id_salt + k))), model_name);
    END LOOP;
END $$;
SELECT random_resealed('sealed: random', 'tiny', 600, 1000);
-- and the compact model, whose decoding widens what it reads
SELECT random_resealed('sealed: random compact', 'tiny_compact', 300, 5000);

\echo == the model cache: changed values it might mistake for the intact tiny model
-- (1) a re-sealed header change that keeps the model id, size and payload
--     checksum, right after the intact model was used: the cache compares
--     the whole header, so the changed value is decoded (XX001, or for the
--     valid one: no levels, 0A000 from the discrete functions)
DO $$
DECLARE t bytea := (SELECT model FROM models WHERE name = 'tiny'); s record; k int := 0;
BEGIN
    FOR s IN SELECT * FROM sealed WHERE cat LIKE 'cache%' ORDER BY n LOOP
        k := k + 1;
        PERFORM dmf_predict(t, 1, 1), dmf_info(t);
        PERFORM record(CASE s.cat WHEN 'cache' THEN 'cache: header re-sealed, same id: '
                                  ELSE 'cache: valid header re-sealed, same id: ' END || s.what,
                       k, s.v, 'tiny');
        -- and the intact model is still itself afterwards
        PERFORM record('cache: intact after a re-sealed header', k, t, 'tiny');
    END LOOP;
END $$;
-- (2) in one query, an in-memory copy of the intact model, then copies with
--     a payload byte changed (row values often reuse the same address).  A
--     documented limitation: a call site that saw the intact value at the
--     same address with the same header and length skips the payload
--     checksum, so such a value may be answered as the intact model.
CREATE FUNCTION interleaved(fn text, pos int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE n int;
BEGIN
    PERFORM dmf_predict(model, 1, 1) FROM models WHERE name = 'base';    -- cached
    EXECUTE format($q$
        SELECT count(%s(CASE WHEN g %% 2 = 1 THEN m.model || ''::bytea
                             ELSE set_byte(m.model, %s, get_byte(m.model, %s) # (g %% 255)) END%s))::int
        FROM models m, generate_series(1, 40) g WHERE m.name = 'base'$q$,
        fn, pos, pos,
        CASE fn WHEN 'dmf_info' THEN '' WHEN 'dmf_predict' THEN ', 1, 1' ELSE ', 1' END)
    INTO n;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
INSERT INTO results
SELECT 'cache: interleaved in one query', pos, fn, interleaved(fn, pos)
FROM unnest(ARRAY['dmf_predict', 'dmf_info', 'dmf_user_factor']) fn,
     unnest(ARRAY[200, 5000, 30000, 55000]) pos;

\echo == results (calls per category and outcome)
\pset footer off
SELECT split_part(cat, ':', 1) || CASE WHEN cat LIKE 'sealed:%' OR cat LIKE 'cache:%'
                                      THEN ':' || regexp_replace(split_part(cat, ':', 2), ', same id$', '')
                                      ELSE '' END AS category,
       count(DISTINCT variant) AS variants, count(*) AS calls,
       count(*) FILTER (WHERE code <> 'ok') AS rejected,
       string_agg(DISTINCT code, ',') AS outcomes
FROM results GROUP BY 1 ORDER BY 1;

\echo == re-sealed models that decode: outcomes other than ok
SELECT cat, string_agg(fn || ' ' || code, ', ' ORDER BY fn) AS outcomes
FROM results WHERE (cat LIKE 'sealed: valid%' OR cat LIKE 'sealed: bad%') AND code <> 'ok'
GROUP BY cat ORDER BY cat;

\echo == outcomes of random re-sealed changes, per function
SELECT cat, fn, code, count(*) FROM results WHERE cat LIKE 'sealed: random%' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

\echo == checks
-- corrupted copies: every call rejected with XX001, or 22023 when the
-- version field (bytes 4-5) names a version this build does not read; a bit
-- flip of the base model's version 2 that gives 3, a version it reads, fails
-- the header checksum instead (XX001)
CREATE TEMP VIEW corrupted AS
SELECT *, CASE WHEN cat = 'version' OR (cat = 'bit flip' AND variant / 8 IN (4, 5)
                                        AND (2 # (1 << (variant - 32))) NOT BETWEEN 1 AND 3)
               THEN '22023' ELSE 'XX001' END AS expected
FROM results WHERE cat NOT LIKE 'sealed%' AND cat NOT LIKE 'cache%';
SET client_min_messages = notice;
DO $$
DECLARE bad record; n int;
BEGIN
    FOR bad IN SELECT * FROM corrupted WHERE code <> expected LIMIT 5 LOOP
        RAISE WARNING 'corrupted model: % #% %: % (expected %)',
            bad.cat, bad.variant, bad.fn, bad.code, bad.expected;
    END LOOP;
    IF FOUND THEN
        RAISE EXCEPTION 'a corrupted model was not rejected with XX001, or 22023 for another version';
    END IF;
    SELECT count(*) INTO n FROM corrupted;
    RAISE NOTICE 'ok: % calls with corrupted models, all rejected (XX001; 22023 for other versions: %)',
        n, (SELECT count(*) FROM corrupted WHERE expected = '22023');

    FOR bad IN SELECT * FROM results
               WHERE cat LIKE 'sealed: invalid%' AND code <> 'XX001' LIMIT 5 LOOP
        RAISE WARNING 're-sealed invalid model not rejected as XX001: % %: %', bad.cat, bad.fn, bad.code;
    END LOOP;
    IF FOUND THEN
        RAISE EXCEPTION 'a structurally invalid model with valid checksums was not rejected with XX001';
    END IF;
    SELECT count(*) INTO n FROM results WHERE cat LIKE 'sealed: invalid%';
    RAISE NOTICE 'ok: % calls with structurally invalid, re-sealed models, all XX001', n;

    FOR bad IN SELECT * FROM results
               WHERE cat LIKE 'sealed: valid%'
                 AND code <> 'ok'
                 AND NOT (cat LIKE '%no quantizer%' AND fn IN ('dmf_predict_discrete', 'dmf_score_discrete')
                          AND code = '0A000')
                 AND NOT (cat LIKE '%no rated section%'
                          AND fn IN ('dmf_recommend', 'dmf_evaluate_ranking', 'dmf_recommend(cold_start)',
                                     'dmf_popular_items', 'dmf_recommend_users')
                          AND code = '0A000')
                 LIMIT 5 LOOP
        RAISE WARNING 'valid re-sealed model failed: % %: %', bad.cat, bad.fn, bad.code;
    END LOOP;
    IF FOUND THEN
        RAISE EXCEPTION 'a valid model was rejected';
    END IF;
    IF EXISTS (SELECT FROM results WHERE cat LIKE '%no quantizer%'
               AND fn IN ('dmf_predict_discrete', 'dmf_score_discrete') AND code <> '0A000') THEN
        RAISE EXCEPTION 'a model without levels did not give 0A000 in the discrete functions';
    END IF;
    IF NOT EXISTS (SELECT FROM results WHERE cat LIKE '%no rated section%'
                   AND fn = 'dmf_recommend' AND code = '0A000') THEN
        RAISE EXCEPTION 'a model without rated items did not give 0A000 in dmf_recommend (exclude_rated)';
    END IF;
    IF NOT EXISTS (SELECT FROM results WHERE cat LIKE '%no rated section%'
                   AND fn = 'dmf_evaluate_ranking' AND code = '0A000') THEN
        RAISE EXCEPTION 'a model without rated items did not give 0A000 in dmf_evaluate_ranking';
    END IF;
    RAISE NOTICE 'ok: valid re-sealed models work (0A000 for discrete predictions without levels)';

    -- metadata that is not a JSON object: the model is invalid (XX001) in
    -- every function, not only in dmf_info
    FOR bad IN SELECT * FROM results
               WHERE cat LIKE 'sealed: bad metadata%' AND code <> 'XX001' LIMIT 5 LOOP
        RAISE WARNING 'metadata that is not a JSON object not rejected as XX001: % %: %',
            bad.cat, bad.fn, bad.code;
    END LOOP;
    IF FOUND THEN
        RAISE EXCEPTION 'a model whose metadata is not a JSON object was not rejected with XX001';
    END IF;
    RAISE NOTICE 'ok: % calls with metadata that is not a JSON object (% variants), all XX001',
        (SELECT count(*) FROM results WHERE cat LIKE 'sealed: bad metadata%'),
        (SELECT count(DISTINCT cat) FROM results WHERE cat LIKE 'sealed: bad metadata%');

    FOR bad IN SELECT * FROM results WHERE code LIKE 'XX%' AND code <> 'XX001' LIMIT 5 LOOP
        RAISE WARNING 'internal error: % #% %: %', bad.cat, bad.variant, bad.fn, bad.code;
    END LOOP;
    IF FOUND THEN
        RAISE EXCEPTION 'a model raised an internal error';
    END IF;
    RAISE NOTICE 'ok: no internal error (XX000) from any model';

    -- A re-sealed header with the id, size and payload checksum of a model
    -- the backend has cached is another model: the cache compares the whole
    -- header, so the value is decoded and judged on its own.
    FOR bad IN SELECT * FROM results
               WHERE cat LIKE 'cache: header re-sealed%' AND code <> 'XX001' LIMIT 5 LOOP
        RAISE WARNING 'cache: re-sealed header answered as the intact model: % %: %',
            bad.cat, bad.fn, bad.code;
    END LOOP;
    IF FOUND THEN
        RAISE EXCEPTION 'the model cache answered a re-sealed header with the intact model''s decoding';
    END IF;
    FOR bad IN SELECT * FROM results
               WHERE cat LIKE 'cache: valid header re-sealed%'
                 AND code <> CASE WHEN fn IN ('dmf_predict_discrete', 'dmf_score_discrete')
                                  THEN '0A000' ELSE 'ok' END LIMIT 5 LOOP
        RAISE WARNING 'cache: valid re-sealed header not decoded on its own: % %: %',
            bad.cat, bad.fn, bad.code;
    END LOOP;
    IF FOUND THEN
        RAISE EXCEPTION 'the model cache answered a valid re-sealed header with the intact model''s decoding';
    END IF;
    FOR bad IN SELECT * FROM results
               WHERE cat = 'cache: intact after a re-sealed header' AND code <> 'ok' LIMIT 5 LOOP
        RAISE WARNING 'cache: the intact model failed after a re-sealed header: % #% %: %',
            bad.cat, bad.variant, bad.fn, bad.code;
    END LOOP;
    IF FOUND THEN
        RAISE EXCEPTION 'the intact model failed after the cache saw a re-sealed header of it';
    END IF;
    RAISE NOTICE 'ok: % calls with re-sealed headers of a cached model, each decoded on its own (XX001; 0A000 without levels), the intact model unaffected',
        (SELECT count(*) FROM results WHERE cat LIKE 'cache:%header re-sealed%');

    -- A per-row in-memory value with a changed payload byte at the
    -- address, with the header and length, of the intact value the call
    -- site saw just before: the cache must compare the bytes, not trust
    -- the address.
    SELECT count(*) INTO n FROM results WHERE cat LIKE 'cache: interleaved%' AND code <> 'XX001';
    IF n > 0 THEN
        FOR bad IN SELECT fn, string_agg(variant::text || ':' || code, ',' ORDER BY variant) AS outcomes
                   FROM results WHERE cat LIKE 'cache: interleaved%' AND code <> 'XX001'
                   GROUP BY fn ORDER BY fn LOOP
            RAISE WARNING '% answered a changed in-memory value as the intact model (byte position:outcome %)',
                bad.fn, bad.outcomes;
        END LOOP;
        RAISE EXCEPTION 'the model cache answered % queries with changed in-memory values', n;
    ELSE
        RAISE NOTICE 'ok: queries interleaving intact and changed in-memory values: all XX001 (% queries)',
            (SELECT count(*) FROM results WHERE cat LIKE 'cache: interleaved%');
    END IF;

    IF (SELECT pid FROM session0) <> pg_backend_pid()
       OR (SELECT started FROM session0) <> pg_postmaster_start_time() THEN
        RAISE EXCEPTION 'the backend or the server restarted';
    END IF;
    RAISE NOTICE 'ok: same backend (pid %), server not restarted', pg_backend_pid();
END $$;
SQL
echo "calls took $((SECONDS - start)) s"

echo "== forged models that decode but must not refresh"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
CREATE FUNCTION refresh_code(m bytea) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM dmf_refresh(m, 'tiny_ratings');
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
DO $$
DECLARE
    t bytea := (SELECT model FROM models WHERE name = 'tiny');
    w record := sect(t, 9);     -- the user branch's weights
    got text;
BEGIN
    got := refresh_code(t);
    IF got <> 'ok' THEN
        RAISE EXCEPTION 'the intact tiny model does not refresh: %', got;
    END IF;
    -- every user weight 1e30: the model decodes, its branch overflows
    got := refresh_code(reseal(overlay(t PLACING decode(repeat('ca f2 49 71', w.len / 4), 'hex')
                                       FROM w.off + 1)));
    IF got NOT LIKE 'XX001: the model''s user branch gives factors that are not finite%' THEN
        RAISE EXCEPTION 'huge weights refreshed: %', got;
    END IF;
    RAISE NOTICE 'ok: huge weights: %', got;
    -- the refresh count at the top of bigint cannot be counted up
    got := refresh_code(reseal(put_meta(t, '{"refreshes": 9223372036854775807}')));
    IF got NOT LIKE 'XX001: the model''s refresh count%' THEN
        RAISE EXCEPTION 'refresh count 2^63-1 refreshed: %', got;
    END IF;
    RAISE NOTICE 'ok: refresh count 2^63-1: %', got;
    got := refresh_code(reseal(put_meta(t, '{"refreshes": 9223372036854775806}')));
    IF got <> 'ok' THEN
        RAISE EXCEPTION 'refresh count 2^63-2 does not refresh: %', got;
    END IF;
    IF (SELECT dmf_info(dmf_refresh(reseal(put_meta(t, '{"refreshes": 9223372036854775806}')),
                                    'tiny_ratings')) ->> 'refreshes') <> '9223372036854775807' THEN
        RAISE EXCEPTION 'refresh count 2^63-2 is not counted up to 2^63-1';
    END IF;
    RAISE NOTICE 'ok: refresh count 2^63-2 counts up to 2^63-1';
END $$;
SQL

started_after=$(psql -X -A -t -q -d "$admin_db" -c "SELECT pg_postmaster_start_time()")
if [[ "$started_after" != "$started_before" ]]; then
    echo "FAILED: the server restarted ($started_before -> $started_after)"
    exit 1
fi
echo "ok: server start time unchanged ($started_after)"
