-- Predicting inside queries.

-- unknown users or items give NULL, never a made-up number
SELECT dmf_predict(model, 1, 1) IS NOT NULL AS known,
       dmf_predict(model, 999999, 1) IS NULL AS unknown_user,
       dmf_predict(model, 1, 999999) IS NULL AS unknown_item,
       dmf_predict(model, -1, -1) IS NULL AS negative_ids,
       dmf_predict(model, NULL, 1) IS NULL AS null_id
FROM models WHERE name = 'base';

-- the model from a scalar subquery, from a join, and from a CTE agree
CREATE TEMP TABLE wishlist AS
SELECT u AS user_id, i AS item_id FROM generate_series(1, 300, 7) u, generate_series(1, 200, 11) i;
SELECT count(*) AS rows,
       count(*) FILTER (WHERE a = b AND b = c) AS agree
FROM (
    SELECT dmf_predict((SELECT model FROM models WHERE name = 'base'), w.user_id, w.item_id) AS a,
           dmf_predict(m.model, w.user_id, w.item_id) AS b,
           (WITH mm AS (SELECT model FROM models WHERE name = 'base')
            SELECT dmf_predict(mm.model, w.user_id, w.item_id) FROM mm) AS c
    FROM wishlist w, models m WHERE m.name = 'base') s;

-- several models in one query: each row uses its own
SELECT m.name, count(*) AS n, round(avg(dmf_predict(m.model, r.user_id, r.item_id))::numeric, 1) BETWEEN 2 AND 4 AS sane
FROM ratings_test r, models m WHERE m.name IN ('base', 'seed8')
GROUP BY m.name ORDER BY m.name;

-- a model is an ordinary value: copied, stored inline, compressed
CREATE TEMP TABLE copies AS SELECT model || ''::bytea AS model FROM models WHERE name = 'base';
SELECT bool_and(dmf_predict(c.model, r.user_id, r.item_id) = dmf_predict(m.model, r.user_id, r.item_id)) AS copy_predicts_the_same
FROM ratings_test r, copies c, models m WHERE m.name = 'base';

-- a retrain inside a rolled-back transaction leaves the old model: the same
-- bytes, model id and predictions, though this backend's model cache has
-- decoded the new model inside the transaction
CREATE TEMP TABLE before AS
SELECT model, dmf_info(model)->>'model_id' AS id,
       (SELECT array_agg(dmf_predict(m.model, user_id, item_id) ORDER BY user_id, item_id)
        FROM wishlist) AS predictions
FROM models m WHERE name = 'base';
BEGIN;
UPDATE models SET model = dmf_train('ratings_train', options => test_options('{"epochs": 1}')) WHERE name = 'base';
SELECT m.model <> b.model AS bytes_changed,
       dmf_info(m.model)->>'model_id' <> b.id AS id_changed,
       (SELECT array_agg(dmf_predict(m.model, user_id, item_id) ORDER BY user_id, item_id)
        FROM wishlist) <> b.predictions AS predictions_changed
FROM models m, before b WHERE m.name = 'base';
ROLLBACK;
SELECT m.model = b.model AS same_bytes,
       dmf_info(m.model)->>'model_id' = b.id AS same_id,
       (SELECT array_agg(dmf_predict(m.model, user_id, item_id) ORDER BY user_id, item_id)
        FROM wishlist) = b.predictions AS same_predictions
FROM models m, before b WHERE m.name = 'base';

-- the top-rated unseen items of a user, in plain SQL
SELECT count(*) AS top5
FROM (SELECT i.item_id
      FROM (SELECT DISTINCT item_id FROM ratings) i, models m
      WHERE m.name = 'base'
        AND NOT EXISTS (SELECT 1 FROM ratings r WHERE r.user_id = 42 AND r.item_id = i.item_id)
      ORDER BY dmf_predict(m.model, 42, i.item_id) DESC, i.item_id
      LIMIT 5) s;

-- ids are looked up directly when they are dense (serial keys) and by binary
-- search when they are spread out: both give the same model and predictions.
-- The spread ids keep the order of the serial ones and no validation split
-- is drawn (it hashes the ids), so training is the same.
CREATE TEMP TABLE ratings_spread AS
SELECT user_id * 1000000007::bigint - 4611686018427387904 AS user_id,
       item_id * 7919::bigint AS item_id, rating
FROM ratings_train;
CREATE TEMP TABLE spread AS
SELECT dmf_train('ratings_train', options => test_options('{"validation_fraction": 0, "epochs": 5}')) AS dense,
       dmf_train('ratings_spread', options => test_options('{"validation_fraction": 0, "epochs": 5}')) AS model;
SELECT count(*) AS pairs, count(p) AS known,
       count(*) FILTER (WHERE p IS NOT DISTINCT FROM q) AS same
FROM (SELECT dmf_predict(s.dense, w.user_id, w.item_id) AS p,
             dmf_predict(s.model, w.user_id * 1000000007::bigint - 4611686018427387904,
                         w.item_id * 7919::bigint) AS q
      FROM (SELECT u AS user_id, i AS item_id
            FROM generate_series(-1, 302) u, generate_series(-1, 202, 3) i) w, spread s) c;
-- around and outside the id ranges of both kinds of lookup
SELECT dmf_predict(m.model, u, 1) IS NULL AS dense_user_null,
       dmf_predict(s.model, u, 7919) IS NULL AS spread_user_null
FROM models m, spread s,
     unnest(ARRAY[-9223372036854775808, -4611686018427387904, -1, 0, 301, 9223372036854775807]::bigint[]) u
WHERE m.name = 'base';

-- functions are declared for the planner: immutable, strict, parallel safe
SELECT proname, provolatile, proisstrict, proparallel
FROM pg_proc WHERE proname LIKE 'dmf\_%' ORDER BY proname, pronargs;
