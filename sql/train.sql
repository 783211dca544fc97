-- Training: quality against baselines, range, determinism, metadata.

-- global mean and a user+item bias model, on the same split
CREATE TEMP TABLE baseline AS
WITH mu AS (SELECT avg(rating) AS mu FROM ratings_train),
bi AS (SELECT item_id, sum(rating - mu) / (count(*) + 5) AS bi
       FROM ratings_train, mu GROUP BY item_id),
bu AS (SELECT user_id, sum(rating - mu - coalesce(bi, 0)) / (count(*) + 5) AS bu
       FROM ratings_train r JOIN bi USING (item_id), mu GROUP BY user_id)
SELECT sqrt(avg((mu - t.rating) ^ 2)) AS rmse_mean,
       sqrt(avg((mu + coalesce(bu, 0) + coalesce(bi, 0) - t.rating) ^ 2)) AS rmse_bias
FROM ratings_test t LEFT JOIN bu USING (user_id) LEFT JOIN bi USING (item_id), mu;

CREATE TEMP TABLE scored AS
SELECT t.*, dmf_predict(m.model, t.user_id, t.item_id) AS p
FROM ratings_test t, models m WHERE m.name = 'base';

-- every test rating of a known user and item gets a prediction in range
SELECT count(*) = count(p) AS all_predicted,
       bool_and(p BETWEEN 1 AND 5) AS in_range
FROM scored;

-- clearly better than the global mean and than the bias baseline
SELECT sqrt(avg((p - rating) ^ 2)) < 0.8 * rmse_mean AS beats_mean_by_20pct,
       sqrt(avg((p - rating) ^ 2)) < rmse_bias AS beats_bias
FROM scored, baseline GROUP BY rmse_mean, rmse_bias;

-- the same data, options and seed give the same model
INSERT INTO models SELECT 'again', dmf_train('ratings_train', options => test_options());
SELECT bool_and(dmf_predict(a.model, r.user_id, r.item_id) =
                dmf_predict(b.model, r.user_id, r.item_id)) AS same_seed_same_model
FROM ratings r, models a, models b WHERE a.name = 'base' AND b.name = 'again';
-- but two trainings are two models: each has its own id
SELECT dmf_info(a.model)->>'model_id' <> dmf_info(b.model)->>'model_id' AS distinct_ids
FROM models a, models b WHERE a.name = 'base' AND b.name = 'again';

-- another seed gives another model
INSERT INTO models SELECT 'seed8', dmf_train('ratings_train', options => test_options('{"seed": 8}'));
SELECT bool_or(dmf_predict(a.model, r.user_id, r.item_id) <>
               dmf_predict(b.model, r.user_id, r.item_id)) AS other_seed_differs
FROM ratings r, models a, models b WHERE a.name = 'base' AND b.name = 'seed8';

-- what dmf_info reports
SELECT info->'format_version' AS version, info->'users' AS users, info->'items' AS items,
       info->'dim' AS dim, info->'user_branch' AS user_branch, info->'item_branch' AS item_branch,
       info->'rating_min' AS rmin, info->'rating_max' AS rmax, info->'discrete' AS discrete
FROM (SELECT dmf_info(model) AS info FROM models WHERE name = 'base') s;
SELECT info->'options' AS options
FROM (SELECT dmf_info(model) AS info FROM models WHERE name = 'base') s;
SELECT (info->>'epochs_run')::int BETWEEN 1 AND 40 AS epochs_run,
       (info->>'best_epoch')::int <= (info->>'epochs_run')::int AS best_epoch,
       jsonb_array_length(info->'history') = (info->>'epochs_run')::int AS history,
       (info->>'best_validation_rmse')::float8 < 1.0 AS validation_rmse,
       (info->>'training_seconds')::float8 > 0 AS seconds,
       (info->>'created_at')::timestamptz <= now() AS created_at,
       (info->>'rows')::int = (SELECT count(*) FROM ratings_train) AS rows,
       (info->>'train_rows')::int + (info->>'validation_rows')::int = (info->>'rows')::int AS split,
       info->>'model_id' ~ '^[0-9a-f]{32}$' AS model_id,
       (info->>'size_bytes')::int = length(m.model) AS size
FROM (SELECT model, dmf_info(model) AS info FROM models WHERE name = 'base') m;

-- a validation table instead of a held-out fraction
CREATE TABLE ratings_val AS
SELECT * FROM ratings_train WHERE abs(hashtext('v' || user_id || ':' || item_id)) % 10 = 0;
CREATE VIEW ratings_fit AS
SELECT * FROM ratings_train WHERE abs(hashtext('v' || user_id || ':' || item_id)) % 10 <> 0;
SELECT (info->>'validation_rows')::int = (SELECT count(*) FROM ratings_val) AS validation_from_table,
       (info->>'train_rows')::int = (SELECT count(*) FROM ratings_fit) AS all_rows_train,
       info->'options'->>'validation' AS validation
FROM (SELECT dmf_info(dmf_train('ratings_fit', options => test_options('{"validation": "ratings_val"}'))) AS info) s;

-- no validation at all: trains every epoch, no early stopping
SELECT (info->>'epochs_run')::int AS epochs_run, info->'best_validation_rmse' AS best_validation_rmse,
       info->>'stop_reason' AS stop_reason
FROM (SELECT dmf_info(dmf_train('ratings_train',
          options => test_options('{"validation_fraction": 0, "epochs": 5}'))) AS info) s;

-- why the epochs ended: early stopping (patience 1 stops well before the cap),
-- the cap, or the time budget.  A budget that the reading alone spends still
-- gets one epoch; the model is complete (fold-in, every factor) and predicts.
SELECT info->>'stop_reason' AS stop_reason, (info->>'epochs_run')::int < 200 AS before_cap
FROM (SELECT dmf_info(dmf_train('ratings_train',
          options => test_options('{"patience": 1, "plateau_drops": 0, "epochs": 200}'))) AS info) s;
SELECT info->>'stop_reason' AS stop_reason, (info->>'epochs_run')::int AS epochs_run
FROM (SELECT dmf_info(dmf_train('ratings_train', options => test_options('{"epochs": 2}'))) AS info) s;
CREATE TEMP TABLE budgeted AS
SELECT dmf_train('ratings_train', options => test_options('{"time_limit": 0.000001, "epochs": 200}')) AS model;
SELECT info->>'stop_reason' AS stop_reason, (info->>'epochs_run')::int AS epochs_run,
       info->'options'->'time_limit' AS time_limit, (info->>'finish_seconds')::float8 > 0 AS finished,
       (SELECT count(*) FILTER (WHERE dmf_predict(b.model, r.user_id, r.item_id) BETWEEN 1 AND 5)
        = count(*) FROM ratings_test r) AS predicts
FROM budgeted b, LATERAL (SELECT dmf_info(b.model) AS info) s;

-- verbose trains the same model; its NOTICEs (with timings) are counted by test/t
SET client_min_messages = warning;
SELECT jsonb_array_length(dmf_info(dmf_train('ratings_train',
           options => test_options('{"verbose": true, "epochs": 2, "validation_fraction": 0}')))->'history') AS epochs;
RESET client_min_messages;

-- other column names, other types: bigint ids, numeric ratings, a view
CREATE TABLE "Odd ""Table""; x" ("User Id" bigint, "item;id" smallint, "Score" numeric);
INSERT INTO "Odd ""Table""; x" SELECT user_id + 1000000000000, item_id, rating FROM ratings_train;
SELECT (dmf_info(dmf_train('"Odd ""Table""; x"', 'User Id', 'item;id', 'Score',
                           test_options('{"epochs": 2}')))->>'users')::int AS users_from_odd_names;

-- explicit rating range wider than the data
SELECT info->'rating_min' AS rmin, info->'rating_max' AS rmax
FROM (SELECT dmf_info(dmf_train('ratings_train',
          options => test_options('{"epochs": 1, "rating_min": 0, "rating_max": 10}'))) AS info) s;

-- NULL rows are skipped with a NOTICE
CREATE TABLE ratings_nulls AS SELECT * FROM ratings_train;
INSERT INTO ratings_nulls VALUES (NULL, 1, 3), (1, NULL, 3), (1000, 1000, NULL);
SELECT (dmf_info(dmf_train('ratings_nulls', options => test_options('{"epochs": 1}')))->>'skipped_null_rows')::int AS skipped;

-- batch_size 0 (the default) is resolved from the data: 8192 ratings per block,
-- but at most about 100 and at least 16 blocks per epoch; the model records the
-- number used (13,808 training rows: 863, 16 blocks)
SELECT (info->'options'->>'batch_size')::int AS auto_batch_size, info->>'train_rows' AS train_rows
FROM (SELECT dmf_info(dmf_train('ratings_train',
          options => test_options('{"epochs": 1, "batch_size": 0}'))) AS info) s;

-- the order rows are stored in does not matter: the same rows give the same model
CREATE TABLE ratings_shuffled AS
SELECT * FROM ratings_train ORDER BY hashtext(item_id || '/' || user_id);
SELECT bool_and(a IS NOT DISTINCT FROM b) AS same_predictions, count(a) AS predictions
FROM (SELECT dmf_predict(m1, r.user_id, r.item_id) AS a, dmf_predict(m2, r.user_id, r.item_id) AS b
      FROM ratings_test r,
           (SELECT dmf_train('ratings_train', options => test_options('{"epochs": 3}')) AS m1,
                   dmf_train('ratings_shuffled', options => test_options('{"epochs": 3}')) AS m2) m) s;

-- plateau_drops: when validation stalls, training goes back to the best weights
-- with the learning rate times plateau_factor, so the history shows the cuts
SELECT array_agg(DISTINCT (h->>'learning_rate')::float8 ORDER BY (h->>'learning_rate')::float8 DESC) AS rates
FROM jsonb_array_elements(dmf_info(dmf_train('ratings_train',
         options => test_options('{"plateau_drops": 2, "plateau_factor": 0.5, "patience": 1, "epochs": 60}')))->'history') h;
