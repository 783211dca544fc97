#!/usr/bin/env bash
# Models forged with a NaN or an infinity in a float section, their page,
# payload and header checksums recomputed (test/lib/reseal.sql): every one
# is an invalid model (XX001) wherever it is decoded, never a model that
# answers, nor one that refreshes into a model without factors.
#
# A model whose user-branch weights were all NaN once decoded: dmf_info and
# dmf_predict worked, and dmf_refresh returned a model whose user factors
# were all zero (every prediction NULL), the dmf_user_factor aggregate
# returned NULL and dmf_explain no rows: the normalisation of the branch's
# output turned the NaN rows into the zero "no factor".
#
# For a model stored in float32 and one in bfloat16, each trained on the same
# 200 x 100 ratings with rating levels, the forgeries are: every user weight
# NaN (section kind 9), every item weight NaN (kind 11), one user weight NaN,
# the item branch's last bias NaN, one user weight +infinity, every user
# weight +infinity, the quantizer's lambda NaN, a quantizer boundary NaN, a
# user factor NaN and an item anchor NaN.  Each goes through dmf_predict,
# dmf_user_factor, dmf_predict_discrete, dmf_info, dmf_predict again,
# dmf_refresh, the dmf_user_factor and dmf_item_factor aggregates and
# dmf_explain, on two paths:
#
#   whole  the value in memory: each call decodes and validates it whole.
#          Every call is XX001 "invalid dmf model", with a detail naming
#          what is wrong ("Weight 0 of the user branch is NaN; ...").
#   lazy   the value stored out of line and uncompressed (STORAGE EXTERNAL),
#          in a fresh backend: dmf_predict, dmf_user_factor and
#          dmf_predict_discrete read only the header, the page checksums,
#          the section table, the ids, the quantizer and the factor pages
#          they need (src/model_cache.c), so a forgery in the weights or
#          anchors, pages they do not read, is served by them, as a damaged
#          page elsewhere is; dmf_info, the first call that reads the rest,
#          is XX001 and from then on every call in the backend is, the
#          predictions too.  A forgery in what they do read (the quantizer,
#          the factor) is XX001 from the first call.
#
# Controls: the intact models answer every call on both paths, and a model
# whose user weights are all 3e38 (finite, so it decodes) answers dmf_info
# and dmf_predict but its user branch overflows: dmf_refresh, the
# dmf_user_factor aggregate and dmf_explain are XX001.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$here/../lib/cluster.sh"

dmf_use_server

admin_db=${PGDATABASE:-postgres}
db="dmf_t021_$$"
dmf_at_exit "psql -X -q -d '$admin_db' -c 'DROP DATABASE IF EXISTS $db WITH (FORCE)' >/dev/null 2>&1"
psql -X -q -v ON_ERROR_STOP=1 -d "$admin_db" -c "CREATE DATABASE $db"

q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$db" "$@"; }

fail() {
    echo "FAILED: $*"
    exit 1
}

echo "== training a float32 and a bfloat16 model (200 x 100 ratings, layers [32], dim 8)"
q -v reseal_sql="$DMF_ROOT/test/lib/reseal.sql" <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION dmf;
-- u32, put_u32, put_u64, put_f64, crc32c, reseal, sect, ...
\i :reseal_sql

-- ratings 1..5 (so the models have levels) on about 30% of the cells; no random()
CREATE TABLE ratings AS
SELECT u::bigint AS user_id, i::bigint AS item_id,
       greatest(1, least(5, round(3 + 1.6 * (sin(u * 0.37) * cos(i * 0.91)
                                           + cos(u * 1.3) * sin(i * 0.23)))))::float8 AS rating
FROM generate_series(1, 200) u, generate_series(1, 100) i
WHERE abs(hashint4(u * 1000 + i)) % 10 < 3;
ANALYZE ratings;

CREATE TABLE models (storage text PRIMARY KEY, model bytea);
INSERT INTO models
SELECT s, dmf_train('ratings', options => jsonb_build_object(
           'layers', '[32]'::jsonb, 'dim', 8, 'epochs', 3, 'seed', 1, 'threads', 1, 'storage', s))
FROM unnest(ARRAY['float32', 'bfloat16']) s;

-- The bytes of v as m stores a float: float32 little-endian, or its upper
-- half (bfloat16, exact for NaN and infinity) when m has DMF_FLAG_BFLOAT16
-- (0x40 of the flags at byte 40, src/core/model_format.h); float4send is
-- big-endian.
CREATE FUNCTION float_bytes(m bytea, v float4) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
SELECT decode(string_agg(lpad(to_hex(get_byte(float4send(v), k)), 2, '0'), '' ORDER BY k DESC), 'hex')
FROM generate_series(0, CASE WHEN u32(m, 40) & 64 <> 0 THEN 1 ELSE 3 END) k
$$;
-- m with element k (k < 0: counted from the end) of float section `kind` set to v
CREATE FUNCTION put_float(m bytea, kind int, k int, v float4) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE s record := sect(m, kind); b bytea := float_bytes(m, v);
BEGIN
    IF k < 0 THEN
        k := s.len / length(b) + k;
    END IF;
    RETURN overlay(m PLACING b FROM s.off + length(b) * k + 1);
END $$;
-- m with every element of float section `kind` set to v
CREATE FUNCTION fill_floats(m bytea, kind int, v float4) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE s record := sect(m, kind); b bytea := float_bytes(m, v);
BEGIN
    RETURN overlay(m PLACING decode(repeat(encode(b, 'hex'), s.len / length(b)), 'hex') FROM s.off + 1);
END $$;

-- Stored out of line and uncompressed, as a real model is: read lazily.
-- lazy_ok: a forgery in pages that dmf_predict, dmf_user_factor and
-- dmf_predict_discrete do not read, which they serve on the lazy path;
-- detail_like: what the error must say.
CREATE TABLE forged (id serial PRIMARY KEY, storage text, what text, lazy_ok bool,
                     detail_like text, v bytea);
ALTER TABLE forged ALTER v SET STORAGE EXTERNAL;
DO $$
DECLARE
    m record;
    q record;
    nl int;
BEGIN
    FOR m IN SELECT * FROM models LOOP
        q := sect(m.model, 12);         -- QUANTIZER: n_levels, lambda, levels, boundaries
        nl := (q.len / 8 - 3) / 2;
        IF nl < 2 THEN
            RAISE EXCEPTION 'the % model has no rating levels', m.storage;
        END IF;
        INSERT INTO forged (storage, what, lazy_ok, detail_like, v) VALUES
        (m.storage, 'intact', NULL, NULL, m.model),
        (m.storage, 'every user weight NaN', true, 'Weight 0 of the user branch is NaN;%',
            fill_floats(m.model, 9, 'NaN')),
        (m.storage, 'every item weight NaN', true, 'Weight 0 of the item branch is NaN;%',
            fill_floats(m.model, 11, 'NaN')),
        (m.storage, 'one user weight NaN', true, 'Weight 17 of the user branch is NaN;%',
            put_float(m.model, 9, 17, 'NaN')),
        (m.storage, 'the item branch''s last bias NaN', true, 'Weight % of the item branch is NaN;%',
            put_float(m.model, 11, -1, 'NaN')),
        (m.storage, 'one user weight +infinity', true, 'Weight 5 of the user branch is infinite;%',
            put_float(m.model, 9, 5, 'Infinity')),
        (m.storage, 'every user weight +infinity', true, 'Weight 0 of the user branch is infinite;%',
            fill_floats(m.model, 9, 'Infinity')),
        (m.storage, 'quantizer lambda NaN', false, 'The quantizer''s lambda is NaN; it must be a finite number, at least 0.',
            put_f64(m.model, q.off + 8, 'NaN')),
        (m.storage, 'a quantizer boundary NaN', false, 'Quantizer boundary 1 is not a finite number.',
            put_f64(m.model, q.off + 16 + 8 * nl + 8, 'NaN')),
        (m.storage, 'a user factor NaN', false, 'The user factors are not unit vectors.',
            put_float(m.model, 4, 0, 'NaN')),
        (m.storage, 'an item anchor NaN', true, 'The item factors are not unit vectors.',
            put_float(m.model, 14, 0, 'NaN')),
        (m.storage, 'every user weight 3e38 (control: finite)', NULL, NULL,
            fill_floats(m.model, 9, 3e38));
    END LOOP;
    -- a model id of its own for each forgery, then every checksum recomputed
    UPDATE forged SET v = reseal(put_u32(v, 12, u32(v, 12) # id)) WHERE what <> 'intact';
END $$;

SELECT storage, count(*) AS models,
       bool_and(pg_column_size(v) = length(v)) AS uncompressed,
       min(length(v)) AS bytes,
       min(u32(v, 92)) AS pages
FROM forged GROUP BY storage ORDER BY storage;

-- The functions, in the order they are called: the three a prediction
-- uses first (lazily: factor pages only), then dmf_info (a whole read),
-- dmf_predict again, then the functions that run a branch.
CREATE FUNCTION fn_order() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
SELECT ARRAY['dmf_predict', 'dmf_user_factor', 'dmf_predict_discrete', 'dmf_info',
             'dmf_predict again', 'dmf_refresh', 'dmf_user_factor(agg)',
             'dmf_item_factor(agg)', 'dmf_explain']
$$;

CREATE FUNCTION try(fn text, v bytea, OUT code text, OUT msg text, OUT detail text)
LANGUAGE plpgsql AS $$
DECLARE
    u bigint := (SELECT min(user_id) FROM ratings);     -- the first user: factor 0
    i bigint := (SELECT min(item_id) FROM ratings);
    d float8;
    r real[];
    j jsonb;
    b bytea;
BEGIN
    CASE fn
    WHEN 'dmf_predict', 'dmf_predict again' THEN
        d := dmf_predict(v, u, i);
        IF d IS NULL THEN
            RAISE EXCEPTION 'no prediction' USING ERRCODE = 'P0002';
        END IF;
    WHEN 'dmf_user_factor' THEN r := dmf_user_factor(v, u);
    WHEN 'dmf_predict_discrete' THEN d := dmf_predict_discrete(v, u, i);
    WHEN 'dmf_info' THEN j := dmf_info(v);
    WHEN 'dmf_refresh' THEN
        b := dmf_refresh(v, 'ratings');
        IF dmf_predict(b, u, i) IS NULL THEN
            RAISE EXCEPTION 'the refreshed model does not predict' USING ERRCODE = 'P0002';
        END IF;
    WHEN 'dmf_user_factor(agg)' THEN
        SELECT dmf_user_factor(v, x.item_id, x.rating) INTO r FROM ratings x WHERE x.user_id = u;
        IF r IS NULL THEN
            RAISE EXCEPTION 'no user factor' USING ERRCODE = 'P0002';
        END IF;
    WHEN 'dmf_item_factor(agg)' THEN
        SELECT dmf_item_factor(v, x.user_id, x.rating) INTO r FROM ratings x WHERE x.item_id = i;
        IF r IS NULL THEN
            RAISE EXCEPTION 'no item factor' USING ERRCODE = 'P0002';
        END IF;
    WHEN 'dmf_explain' THEN
        SELECT count(*) INTO d FROM dmf_explain(v, u, i, 3, 'ratings');
        IF d = 0 THEN
            RAISE EXCEPTION 'no explanation' USING ERRCODE = 'P0002';
        END IF;
    END CASE;
    code := 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
END $$;

CREATE TABLE results (path text, id int, step int, fn text, code text, msg text, detail text);
-- Runs the calls on forgery `id`: 'lazy' passes the stored value, its TOAST
-- pointer (the variables of a function called by SELECT keep it), 'whole' a
-- copy in memory.  Generic plans: a custom plan would put the value into the
-- aggregates' and dmf_explain's queries as a constant, and a constant is
-- detoasted, in memory.
CREATE FUNCTION run(path text, forged_id int) RETURNS void LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v bytea := (SELECT f.v FROM forged f WHERE f.id = forged_id);
    c record;
    t record;
BEGIN
    IF path = 'whole' THEN
        v := v || ''::bytea;
    END IF;
    FOR c IN SELECT * FROM unnest(fn_order()) WITH ORDINALITY AS x(fn, step) LOOP
        t := try(c.fn, v);
        INSERT INTO results VALUES (path, forged_id, c.step, c.fn, t.code, t.msg, t.detail);
    END LOOP;
END $$;
SQL

echo "== every model through the functions: in memory (one backend), then stored, each in a fresh backend"
ids=$(q -c "SELECT string_agg(id::text, ' ' ORDER BY id) FROM forged")
q -c "SELECT run('whole', id) FROM forged ORDER BY id" >/dev/null
for id in $ids; do
    q -c "SELECT run('lazy', $id)" >/dev/null
done

q -P footer=off -F ' | ' <<'SQL'
\pset format aligned
\pset tuples_only off
SELECT f.storage, f.what, r.path,
       string_agg(CASE WHEN r.code = 'ok' THEN 'ok' ELSE r.code END, ' ' ORDER BY r.step) AS codes
FROM results r JOIN forged f USING (id)
GROUP BY f.id, f.storage, f.what, r.path ORDER BY f.id, r.path DESC;
SELECT DISTINCT f.what, r.msg, r.detail
FROM results r JOIN forged f USING (id)
WHERE r.code <> 'ok' AND r.step = 4 AND r.path = 'whole' AND f.storage = 'float32'
ORDER BY 1;
SQL

echo "== checks"
bad=$(q <<'SQL'
WITH expect AS (
    SELECT r.*, f.storage, f.what, f.detail_like,
           CASE
               WHEN f.what = 'intact' THEN 'ok'
               WHEN f.what LIKE '%3e38%' THEN
                   CASE WHEN r.fn IN ('dmf_refresh', 'dmf_user_factor(agg)', 'dmf_explain')
                        THEN 'XX001' ELSE NULL END     -- NULL: not checked
               WHEN r.path = 'lazy' AND f.lazy_ok AND r.step <= 3 THEN 'ok'
               ELSE 'XX001'
           END AS expected
    FROM results r JOIN forged f USING (id)
)
SELECT format('%s %s, %s path, %s: %s (expected %s) %s %s', storage, what, path, fn, code,
              expected, msg, detail)
FROM expect
WHERE code IS DISTINCT FROM expected AND expected IS NOT NULL
   OR (code = 'XX001' AND detail_like IS NOT NULL
       AND (msg <> 'invalid dmf model' OR detail NOT LIKE detail_like))
ORDER BY id, path, step
LIMIT 20;
SQL
)
if [[ -n "$bad" ]]; then
    echo "$bad"
    fail "a forged model was not an invalid model (XX001) where it was decoded"
fi
counts=$(q -F ' ' <<'SQL'
SELECT count(*) FILTER (WHERE f.detail_like IS NOT NULL),
       count(*) FILTER (WHERE f.detail_like IS NOT NULL AND r.code = 'XX001'),
       count(*) FILTER (WHERE f.detail_like IS NOT NULL AND r.code = 'ok'),
       count(*) FILTER (WHERE f.what = 'intact' AND r.code = 'ok'),
       count(DISTINCT f.id) FILTER (WHERE f.detail_like IS NOT NULL)
FROM results r JOIN forged f USING (id);
SQL
)
read -r calls rejected served intact forgeries <<<"$counts"
echo "ok: $forgeries forgeries (float32 and bfloat16), $calls calls: $rejected XX001 with the detail expected," \
    "$served lazy predictions served from factor pages before the first whole read"
echo "ok: the intact models answer all $intact calls on both paths;" \
    "finite 3e38 weights decode and their branch overflows to XX001"
echo "ok"
