-- Users and items added after training: areas I-IV, refresh, aggregates.
\set VERBOSITY default

-- 10% of users and 10% of items are "new": the model never sees them
CREATE TABLE p2 AS
SELECT r.*,
       abs(hashtext('u' || user_id)) % 10 = 0 AS new_user,
       abs(hashtext('i' || item_id)) % 10 = 0 AS new_item,
       abs(hashtext('s' || user_id || ':' || item_id)) % 10 < 2 AS is_test
FROM ratings r;
CREATE VIEW p2_area1_train AS
SELECT user_id, item_id, rating FROM p2 WHERE NOT is_test AND NOT new_user AND NOT new_item;
-- after training, the train ratings of all areas are "added to the table"
CREATE VIEW p2_all_train AS SELECT user_id, item_id, rating FROM p2 WHERE NOT is_test;

-- In this synthetic data which items a user rated is pure chance, so the
-- offset encoding's "what was rated" signal is only a per-row fingerprint;
-- centred inputs carry the taste alone and extend to new rows.
-- Training entities are folded in too ("both"), so that aggregates, which
-- fold every row in, agree with the refreshed factors of all entities below.
INSERT INTO models SELECT 'p2', dmf_train('p2_area1_train',
    options => test_options('{"input_encoding": "centered", "fold_in_training": "both"}'));
INSERT INTO models SELECT 'p2_refreshed', dmf_refresh(model, 'p2_all_train') FROM models WHERE name = 'p2';

-- the trained model knows none of the new users or items
SELECT count(dmf_predict(m.model, t.user_id, t.item_id)) AS predicted_before_refresh,
       count(*) FILTER (WHERE NOT new_user AND NOT new_item) AS area1_rows
FROM p2 t, models m WHERE m.name = 'p2' AND t.is_test;

-- after the refresh, every area is predicted, each clearly better than the global mean
CREATE TEMP TABLE p2_scored AS
SELECT CASE WHEN NOT new_user AND NOT new_item THEN 'I'
            WHEN new_user AND NOT new_item THEN 'II'
            WHEN NOT new_user AND new_item THEN 'III' ELSE 'IV' END AS area,
       t.rating, dmf_predict(m.model, t.user_id, t.item_id) AS p,
       (SELECT avg(rating) FROM p2_area1_train) AS mu
FROM p2 t, models m WHERE m.name = 'p2_refreshed' AND t.is_test;
SELECT area, count(*) > 0 AS has_rows,
       count(p) = count(*) AS all_predicted,
       sqrt(avg((p - rating) ^ 2)) < 0.8 * sqrt(avg((mu - rating) ^ 2)) AS beats_mean_by_20pct
FROM p2_scored GROUP BY area ORDER BY area;

-- what the refresh reports
SELECT info->'refreshes' AS refreshes,
       (info->>'users_added')::int = (SELECT count(DISTINCT user_id) FROM p2 WHERE new_user AND NOT is_test) AS users_added,
       (info->>'items_added')::int > 0 AS items_added,
       (info->>'users')::int = (info->>'training_users')::int + (info->>'users_added')::int AS users,
       info->>'model_id' <> (SELECT dmf_info(model)->>'model_id' FROM models WHERE name = 'p2') AS new_id
FROM (SELECT dmf_info(model) AS info FROM models WHERE name = 'p2_refreshed') s;

-- refreshing is idempotent: a refresh of the refresh predicts the same
-- (refreshed once: in the select list, the volatile refresh would run per row)
WITH b AS MATERIALIZED (
    SELECT dmf_refresh(model, 'p2_all_train') AS model FROM models WHERE name = 'p2_refreshed')
SELECT bool_and(dmf_predict(a.model, t.user_id, t.item_id) IS NOT DISTINCT FROM
                dmf_predict(b.model, t.user_id, t.item_id)) AS idempotent
FROM p2 t, models a, b WHERE a.name = 'p2_refreshed' AND t.is_test;

-- in-query factors (aggregates) agree with the refreshed model's factors
CREATE TEMP TABLE agg_users AS
SELECT user_id, dmf_user_factor(m.model, item_id, rating) AS f
FROM p2_all_train, models m WHERE m.name = 'p2' GROUP BY user_id;
CREATE TEMP TABLE agg_items AS
SELECT item_id, dmf_item_factor(m.model, user_id, rating) AS f
FROM p2_all_train, models m WHERE m.name = 'p2' GROUP BY item_id;
SELECT count(*) AS users,
       max((SELECT max(abs(a - b)) FROM unnest(u.f, dmf_user_factor(m.model, u.user_id)) x(a, b))) < 1e-5 AS agree
FROM agg_users u, models m WHERE m.name = 'p2_refreshed';
SELECT count(*) AS items,
       max((SELECT max(abs(a - b)) FROM unnest(i.f, dmf_item_factor(m.model, i.item_id)) x(a, b))) < 1e-5 AS agree
FROM agg_items i, models m WHERE m.name = 'p2_refreshed';

-- scores from in-query factors equal the refreshed model's predictions
SELECT bool_and(abs(dmf_score(m.model, u.f, i.f) - dmf_predict(r.model, t.user_id, t.item_id)) < 1e-5) AS scores_agree
FROM p2 t JOIN agg_users u USING (user_id) JOIN agg_items i USING (item_id), models m, models r
WHERE m.name = 'p2' AND r.name = 'p2_refreshed' AND t.is_test;

-- stored and in-query factors mix: a new user against a known item
SELECT dmf_score(m.model, u.f, dmf_item_factor(m.model, t.item_id)) BETWEEN 1 AND 5 AS mixed
FROM p2 t JOIN agg_users u USING (user_id), models m
WHERE m.name = 'p2' AND t.new_user AND NOT t.new_item AND t.is_test LIMIT 1;

-- the same aggregates in a parallel plan
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
CREATE TABLE p2_copy AS SELECT user_id, item_id, rating FROM p2 WHERE NOT is_test;
ANALYZE p2_copy;
CREATE FUNCTION plan_is_parallel(q text) RETURNS bool LANGUAGE plpgsql AS $$
DECLARE line text; found bool := false;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
        IF line ~ 'Partial' THEN found := true; END IF;
    END LOOP;
    RETURN found;
END $$;
-- partial aggregates in the workers, combined in the leader
SELECT plan_is_parallel($$SELECT user_id, dmf_user_factor((SELECT model FROM models WHERE name = 'p2'), item_id, rating)
                          FROM p2_copy GROUP BY user_id$$) AS parallel_plan;
SELECT count(*) AS users, bool_and(p.f = s.f) AS parallel_equals_serial
FROM (SELECT user_id, dmf_user_factor((SELECT model FROM models WHERE name = 'p2'), item_id, rating) AS f
      FROM p2_copy GROUP BY user_id) p
JOIN agg_users s USING (user_id);
-- a computed (not stored) model crosses to the leader as bytes, not as a TOAST pointer
SELECT count(*) AS users, bool_and(p.f = s.f) AS parallel_equals_serial_inline
FROM (SELECT user_id, dmf_user_factor((SELECT model || ''::bytea FROM models WHERE name = 'p2'), item_id, rating) AS f
      FROM p2_copy GROUP BY user_id) p
JOIN agg_users s USING (user_id);
-- a model passed as a query parameter, inlined as a constant (custom plan)
-- or a parameter (generic plan): partial states name it by digest, and the
-- leader, which aggregates nothing itself here, finds it in its own plan
SET parallel_leader_participation = off;
SELECT encode(model, 'hex') AS p2_hex FROM models WHERE name = 'p2' \gset
CREATE FUNCTION workers_launched(q text) RETURNS int LANGUAGE plpgsql AS $$
DECLARE line text; n int := 0;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
        IF line ~ 'Workers Launched' THEN n := n + substring(line FROM '(\d+)')::int; END IF;
    END LOOP;
    RETURN n;
END $$;
PREPARE factors_equal(bytea) AS
SELECT count(*) AS users, bool_and(p.f = s.f) AS parallel_equals_serial
FROM (SELECT user_id, dmf_user_factor($1, item_id, rating) AS f FROM p2_copy GROUP BY user_id) p
JOIN agg_users s USING (user_id);
SET plan_cache_mode = force_custom_plan;
SELECT workers_launched(format('EXECUTE factors_equal(decode(%L, ''hex''))', :'p2_hex')) > 0 AS parallel_custom;
EXECUTE factors_equal(decode(:'p2_hex', 'hex'));
SET plan_cache_mode = force_generic_plan;
SELECT workers_launched(format('EXECUTE factors_equal(decode(%L, ''hex''))', :'p2_hex')) > 0 AS parallel_generic;
EXECUTE factors_equal(decode(:'p2_hex', 'hex'));
DEALLOCATE factors_equal;
RESET plan_cache_mode;
RESET parallel_leader_participation;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- Fold-in of the entities a training saw: chosen on validation ("auto") or
-- fixed by the fold_in_training option; new entities are always folded in.
-- "auto" keeps the lowest validation RMSE of the four (a tie folds in)
SELECT name,
       (SELECT key FROM jsonb_each_text(info->'fold_in_validation_rmse')
        ORDER BY value::float8, key = 'both' DESC LIMIT 1) =
       CASE WHEN (info->>'fold_in_training_users')::bool AND (info->>'fold_in_training_items')::bool THEN 'both'
            WHEN (info->>'fold_in_training_users')::bool THEN 'users'
            WHEN (info->>'fold_in_training_items')::bool THEN 'items' ELSE 'none' END AS auto_takes_the_best
FROM (SELECT name, dmf_info(model) AS info FROM models WHERE name IN ('base', 'seed8')) s ORDER BY name;
-- the same training with training users left unfolded: the weights and the
-- items' factors are the same, the training users keep their branch factors
INSERT INTO models SELECT 'p2_items_only', dmf_train('p2_area1_train',
    options => test_options('{"input_encoding": "centered", "fold_in_training": "items"}'));
SELECT info->'fold_in_training_users' AS users_folded, info->'fold_in_training_items' AS items_folded,
       info->'options'->'fold_in_training' AS option
FROM (SELECT dmf_info(model) AS info FROM models WHERE name = 'p2_items_only') s;
SELECT bool_and(dmf_item_factor(a.model, t.item_id) = dmf_item_factor(b.model, t.item_id)) AS item_factors_equal,
       bool_or(dmf_user_factor(a.model, t.user_id) <> dmf_user_factor(b.model, t.user_id)) AS user_factors_differ
FROM p2_area1_train t, models a, models b WHERE a.name = 'p2' AND b.name = 'p2_items_only';
-- a refresh applies the model's choice, for either side: with the training
-- ratings it gives back the trained factors; new users are still folded in,
-- as aggregates are
INSERT INTO models SELECT 'p2_users_only', dmf_train('p2_area1_train',
    options => test_options('{"input_encoding": "centered", "fold_in_training": "users"}'));
WITH r AS MATERIALIZED (
    SELECT name, dmf_refresh(model, 'p2_area1_train') AS model FROM models
    WHERE name IN ('p2_items_only', 'p2_users_only'))
SELECT m.name, bool_and(dmf_predict(m.model, t.user_id, t.item_id) IS NOT DISTINCT FROM
                        dmf_predict(r.model, t.user_id, t.item_id)) AS refresh_keeps_the_choice
FROM p2 t, models m JOIN r USING (name)
WHERE t.is_test
GROUP BY m.name ORDER BY m.name;
WITH r AS MATERIALIZED (
    SELECT dmf_refresh(model, 'p2_all_train') AS model FROM models WHERE name = 'p2_items_only'),
agg AS (SELECT user_id, dmf_user_factor(m.model, item_id, rating) AS f
        FROM p2_all_train JOIN p2 USING (user_id, item_id, rating), models m
        WHERE m.name = 'p2_items_only' AND new_user GROUP BY user_id)
SELECT count(*) > 0 AS new_users,
       max((SELECT max(abs(a - b)) FROM unnest(agg.f, dmf_user_factor(r.model, agg.user_id)) x(a, b))) < 1e-5
           AS new_users_folded_in
FROM agg, r;

-- no rating of a training item: no factor, so NULL
SELECT dmf_user_factor(m.model, item_id, rating) IS NULL AS no_known_items
FROM (VALUES (999999::bigint, 4.0::float8)) v(item_id, rating), models m WHERE m.name = 'p2';
SELECT dmf_user_factor(m.model, 999999) IS NULL AS unknown_stored FROM models m WHERE m.name = 'p2';
SELECT dmf_user_factor(m.model, item_id, rating) IS NULL AS empty_group
FROM (SELECT 1::bigint AS item_id, 3::float8 AS rating WHERE false) v, models m WHERE m.name = 'p2';
-- NULL rows are ignored by the aggregates
SELECT dmf_user_factor(m.model, item_id, rating) IS NOT NULL AS nulls_ignored
FROM (VALUES (1::bigint, NULL::float8), (NULL, 3), (1, 4)) v(item_id, rating), models m WHERE m.name = 'p2';

-- errors
SELECT dmf_score(model, '{1,2,3}'::real[], dmf_item_factor(model, 1)) FROM models WHERE name = 'p2';
SELECT dmf_score(model, dmf_user_factor(model, 1), '{1,2}'::real[]) FROM models WHERE name = 'p2';
SELECT dmf_score(model, array_fill(1::real, ARRAY[16]) || NULL::real, dmf_item_factor(model, 1)) FROM models WHERE name = 'p2';
SELECT dmf_score(model, array_fill(0::real, ARRAY[16]), dmf_item_factor(model, 1)) IS NULL AS zero_factor FROM models WHERE name = 'p2';
SELECT dmf_user_factor(m.model, item_id, rating)
FROM (VALUES (1::bigint, 9.0::float8)) v(item_id, rating), models m WHERE m.name = 'p2';
SELECT dmf_user_factor(m.model, item_id, rating)
FROM (VALUES (1::bigint, 4.0::float8), (1, 5.0)) v(item_id, rating), models m WHERE m.name = 'p2';
SELECT dmf_user_factor(m.model, item_id, rating)
FROM (VALUES (1::bigint, 4.0::float8)) v(item_id, rating), models m;
CREATE TABLE refresh_bad AS SELECT * FROM p2_all_train;
INSERT INTO refresh_bad VALUES (1, 1, 11);
SELECT dmf_refresh(model, 'refresh_bad') FROM models WHERE name = 'p2';
DELETE FROM refresh_bad WHERE rating = 11;
INSERT INTO refresh_bad SELECT user_id, item_id, rating FROM p2_all_train LIMIT 1;
SELECT dmf_refresh(model, 'refresh_bad') FROM models WHERE name = 'p2';
SELECT dmf_refresh(model, NULL) FROM models WHERE name = 'p2';
SELECT dmf_refresh(model, 'p2_all_train', 'nope') FROM models WHERE name = 'p2';

-- the offset encoding refreshes too (the default; its input has no mean to recompute)
WITH m AS MATERIALIZED (
    SELECT dmf_refresh(dmf_train('p2_area1_train', options => test_options('{"epochs": 3}')),
                       'p2_all_train') AS model)
SELECT count(dmf_predict(m.model, t.user_id, t.item_id)) = count(*) AS offset_refresh_predicts_all
FROM p2 t, m WHERE t.is_test;
