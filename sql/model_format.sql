-- Corrupted or foreign model bytes are an ERROR, never a crash.
\set VERBOSITY default

SELECT dmf_predict(''::bytea, 1, 1);
SELECT dmf_predict('\xdeadbeef'::bytea, 1, 1);
SELECT dmf_info('not a model at all, just some text that is long enough'::bytea);
-- a header alone (terse: the detail holds the model's size, which varies)
\set VERBOSITY terse
SELECT dmf_predict(substring(model FROM 1 FOR 128), 1, 1) FROM models WHERE name = 'base';
\set VERBOSITY default
-- a future format version (bytes 5-6, little-endian)
SELECT dmf_predict(set_byte(model, 4, 4), 1, 1) FROM models WHERE name = 'base';
-- a flipped payload byte
SELECT dmf_predict(set_byte(model, 5000, get_byte(model, 5000) # 1), 1, 1) FROM models WHERE name = 'base';
-- the magic of another format
SELECT dmf_info(overlay(model PLACING 'XXXX'::bytea FROM 1)) FROM models WHERE name = 'base';

-- Every truncation of the header and many beyond it, every bit of the
-- header, and byte flips across the payload: all rejected, none crash.
CREATE FUNCTION count_rejected(variants bytea[]) RETURNS TABLE (tried int, rejected int, codes text)
LANGUAGE plpgsql AS $$
DECLARE
    v bytea;
    codes_seen text[] := '{}';
BEGIN
    tried := 0; rejected := 0;
    FOREACH v IN ARRAY variants LOOP
        tried := tried + 1;
        BEGIN
            PERFORM dmf_predict(v, 1, 1);
        EXCEPTION WHEN OTHERS THEN
            rejected := rejected + 1;
            IF NOT SQLSTATE = ANY (codes_seen) THEN
                codes_seen := codes_seen || SQLSTATE;
            END IF;
        END;
    END LOOP;
    SELECT string_agg(c, ',' ORDER BY c) INTO codes FROM unnest(codes_seen) c;
    RETURN NEXT;
END $$;

-- truncations: every length up to 400, then 300 lengths spread over the rest
SELECT * FROM count_rejected(ARRAY(
    SELECT substring(model FROM 1 FOR n) FROM models, generate_series(0, 399) n WHERE name = 'base'
    UNION ALL
    SELECT substring(model FROM 1 FOR 400 + (length(model) - 401) * k / 300)
    FROM models, generate_series(0, 299) k WHERE name = 'base'));

-- every single-bit flip of the header and of the section table
SELECT * FROM count_rejected(ARRAY(
    SELECT set_bit(model, b, 1 - get_bit(model, b)) FROM models, generate_series(0, 8 * 400 - 1) b
    WHERE name = 'base'));

-- byte flips at 3000 places spread over the payload
SELECT * FROM count_rejected(ARRAY(
    SELECT set_byte(model, p, (get_byte(model, p) + 1 + p % 255) % 256)
    FROM models, generate_series(0, 2999) k,
         LATERAL (SELECT 400 + (length(model) - 401) * k / 3000 AS p) s
    WHERE name = 'base'));

-- the intact model still works after all that
SELECT dmf_predict(model, 1, 1) BETWEEN 1 AND 5 AS intact FROM models WHERE name = 'base';

-- A model stored out of line and uncompressed is read lazily: dmf_predict,
-- dmf_predict_discrete, dmf_user_factor and dmf_item_factor in a fresh
-- backend read the header, the page checksums, the section table, the ids
-- and the pages of the factors they use, each page checked against its
-- checksum before use; any other function reads and checks the rest.
CREATE TABLE stored_models (name text PRIMARY KEY, model bytea);
ALTER TABLE stored_models ALTER model SET STORAGE EXTERNAL;
-- byte offset of section kind k (model_format.h: 7 ITEM_FACTORS), little-endian
CREATE FUNCTION section_offset(m bytea, k int) RETURNS int LANGUAGE sql AS $$
    SELECT get_byte(m, 136 + 24 * e) + 256 * get_byte(m, 137 + 24 * e)
           + 65536 * get_byte(m, 138 + 24 * e)
    FROM generate_series(0, get_byte(m, 68) - 1) e WHERE get_byte(m, 128 + 24 * e) = k $$;
INSERT INTO stored_models SELECT 'intact', model FROM models WHERE name = 'base';
-- the same bytes under another TOAST pointer: a cache entry of their own
INSERT INTO stored_models SELECT 'intact_whole', model FROM models WHERE name = 'base';
-- one byte of the last item's factor changed
INSERT INTO stored_models
SELECT 'bad_factor', set_byte(model, p, (get_byte(model, p) + 1) % 256)
FROM models, LATERAL (SELECT section_offset(model, 7) + (200 - 1) * 16 * 4 + 5 AS p) s
WHERE name = 'base';
-- one byte of the page checksums (the last bytes of the model) changed
INSERT INTO stored_models
SELECT 'bad_table', set_byte(model, length(model) - 1, (get_byte(model, length(model) - 1) + 1) % 256)
FROM models WHERE name = 'base';
SELECT name, pg_column_size(model) = length(model) AS stored_uncompressed,
       (dmf_info(model) ->> 'format_version') AS version
FROM stored_models WHERE name = 'intact';
-- the last item's factor lies on another page than the ids (where the
-- metadata ends, its length varies: the first item's page may be either)
SELECT (section_offset(model, 7) + 199 * 64 - 128) / 32768 AS last_item_page,
       (section_offset(model, 5) - 128) / 32768 AS item_ids_page
FROM models WHERE name = 'base';

\c
\set VERBOSITY default
-- every prediction and stored factor read lazily equals the one of the
-- model read whole (by dmf_info, first)
SELECT dmf_info(model) ->> 'users' AS users FROM stored_models WHERE name = 'intact_whole';
CREATE TEMP TABLE lazy AS
SELECT u, i, dmf_predict(s.model, u, i) AS p, dmf_predict_discrete(s.model, u, i) AS d,
       dmf_user_factor(s.model, u) AS uf, dmf_item_factor(s.model, i) AS itf
FROM stored_models s, generate_series(0, 301) u, generate_series(0, 201) i
WHERE s.name = 'intact';
SELECT count(*) AS pairs, count(p) AS predicted,
       count(*) FILTER (WHERE p IS NOT DISTINCT FROM dmf_predict(w.model, u, i)
                          AND d IS NOT DISTINCT FROM dmf_predict_discrete(w.model, u, i)
                          AND uf IS NOT DISTINCT FROM dmf_user_factor(w.model, u)
                          AND itf IS NOT DISTINCT FROM dmf_item_factor(w.model, i)) AS equal
FROM lazy, stored_models w WHERE w.name = 'intact_whole';

\c
\set VERBOSITY default
-- a damaged factor page: an ERROR when a call reads it, and for any full read;
-- a call that reads other pages only, before, is served (user 1's factor lies on page 0)
SELECT (section_offset(model, 4) + 64 * 16 * 4 - 128) / 32768 AS first_users_end_page
FROM models WHERE name = 'base';
SELECT dmf_user_factor(model, 1) IS NOT NULL AS served FROM stored_models WHERE name = 'bad_factor';
SELECT dmf_predict(model, 1, 200) FROM stored_models WHERE name = 'bad_factor';
SELECT dmf_item_factor(model, 200) FROM stored_models WHERE name = 'bad_factor';
SELECT dmf_info(model) FROM stored_models WHERE name = 'bad_factor';
SELECT count(*) FROM dmf_recommend((SELECT model FROM stored_models WHERE name = 'bad_factor'), 1, 5);
-- once found corrupt, the model answers no call of the backend, not even what it served before
SELECT dmf_user_factor(model, 1) IS NOT NULL AS served FROM stored_models WHERE name = 'bad_factor';
-- damaged page checksums: an ERROR at the first call
SELECT dmf_predict(model, 1, 1) FROM stored_models WHERE name = 'bad_table';
-- the intact model, read lazily in the same backend, is unaffected
SELECT dmf_predict(s.model, 1, 200) = dmf_predict(m.model, 1, 200) AS intact_equal
FROM stored_models s, models m WHERE s.name = 'intact' AND m.name = 'base';

-- "storage": "bfloat16" (format version 3): weights and factors in 16 bits,
-- who rated what in 16-bit item positions; about half the size. The same
-- training (deterministic: one thread, same seed) as 'base', only stored
-- compact, so every difference below is rounding.
INSERT INTO models SELECT 'compact', dmf_train('ratings_train', options => test_options('{"storage": "bfloat16"}'));
SELECT dmf_info(c.model) ->> 'storage' AS storage, dmf_info(c.model) ->> 'format_version' AS version,
       dmf_info(b.model) ->> 'storage' AS base_storage,
       round(length(c.model)::numeric / length(b.model), 2) AS size_ratio,
       dmf_info(c.model) -> 'rated_pairs' = dmf_info(b.model) -> 'rated_pairs' AS same_rated
FROM models c, models b WHERE c.name = 'compact' AND b.name = 'base';
-- predictions move by rounding only: far below the model's error
SELECT count(*) AS pairs,
       max(abs(dmf_predict(c.model, t.user_id, t.item_id) - dmf_predict(b.model, t.user_id, t.item_id))) < 0.01 AS close,
       max(abs(dmf_predict(c.model, t.user_id, t.item_id) - dmf_predict(b.model, t.user_id, t.item_id))) > 0 AS rounded
FROM ratings_test t, models c, models b WHERE c.name = 'compact' AND b.name = 'base';
SELECT abs(c.rmse - b.rmse) < 0.001 AS same_rmse, c.n = b.n AS same_n
FROM dmf_evaluate((SELECT model FROM models WHERE name = 'compact'), 'ratings_test') c,
     dmf_evaluate((SELECT model FROM models WHERE name = 'base'), 'ratings_test') b;
-- recommendations leave out exactly the rated items, as the base model's do
SELECT count(*) FILTER (WHERE r.item_id IN (SELECT item_id FROM ratings_train WHERE user_id = 5)) AS rated_recommended,
       count(*) AS recommended,
       (SELECT count(*) FROM dmf_recommend((SELECT model FROM models WHERE name = 'base'), 5, 1000)) AS base_recommended
FROM dmf_recommend((SELECT model FROM models WHERE name = 'compact'), 5, 1000) r;
-- a refresh keeps the storage; new users get factors as in a float32 model
SELECT dmf_info(m) ->> 'storage' AS storage, dmf_info(m) ->> 'format_version' AS version,
       (dmf_info(m) ->> 'users')::int AS users
FROM (SELECT dmf_refresh(model, 'ratings') AS m FROM models WHERE name = 'compact') s;
-- read lazily, a compact model answers as read whole
INSERT INTO stored_models SELECT 'compact', model FROM models WHERE name = 'compact';
INSERT INTO stored_models SELECT 'compact_whole', model FROM models WHERE name = 'compact';
\c
SELECT dmf_info(model) ->> 'users' AS users FROM stored_models WHERE name = 'compact_whole';
SELECT count(*) AS pairs, count(p) AS predicted,
       count(*) FILTER (WHERE p IS NOT DISTINCT FROM dmf_predict(w.model, u, i)
                          AND uf IS NOT DISTINCT FROM dmf_user_factor(w.model, u)
                          AND itf IS NOT DISTINCT FROM dmf_item_factor(w.model, i)) AS equal
FROM (SELECT u, i, dmf_predict(s.model, u, i) AS p, dmf_user_factor(s.model, u) AS uf,
             dmf_item_factor(s.model, i) AS itf
      FROM stored_models s, generate_series(0, 301) u, generate_series(0, 201) i
      WHERE s.name = 'compact') lazy, stored_models w
WHERE w.name = 'compact_whole';
