-- DMF-D: discrete ratings through a learned quantizer.
\set VERBOSITY default

INSERT INTO models SELECT 'dmfd', dmf_train('ratings_train', options => test_options('{"discrete": true, "epochs": 60}'));
-- the same model without the quantizer (DMF-D's first phase is this training)
INSERT INTO models SELECT 'plain60', dmf_train('ratings_train', options => test_options('{"epochs": 60, "patience": 6, "plateau_drops": 1}'));

-- DMF-D beats rounding the plain model, in RMSE and in MAE, by at least 1%
SELECT sqrt(avg((d - rating) ^ 2)) < 0.99 * sqrt(avg((r - rating) ^ 2)) AS dmfd_beats_rounding_rmse,
       avg(abs(d - rating)) < 0.99 * avg(abs(r - rating)) AS dmfd_beats_rounding_mae
FROM (SELECT t.rating, dmf_predict_discrete(d.model, t.user_id, t.item_id) AS d,
             greatest(1, least(5, round(dmf_predict(p.model, t.user_id, t.item_id)))) AS r
      FROM ratings_test t, models d, models p WHERE d.name = 'dmfd' AND p.name = 'plain60') s;

-- DMF-D keeps the stopping rule its quantizer was tuned with (a plain training takes
-- patience 3 and two cuts: train.sql), unless given
SELECT i->'options'->>'patience' AS patience, i->'options'->>'plateau_drops' AS plateau_drops
FROM (SELECT dmf_info(model) AS i FROM models WHERE name = 'dmfd') s;
SELECT i->'options'->>'patience' AS patience, i->'options'->>'plateau_drops' AS plateau_drops
FROM (SELECT dmf_info(dmf_train('ratings_train', options => test_options('{"discrete": true, "epochs": 1, "patience": 2, "plateau_drops": 3}'))) AS i) s;
-- every discrete prediction is a level; the boundaries stay sorted
SELECT bool_and(dmf_predict_discrete(m.model, t.user_id, t.item_id) IN (1, 2, 3, 4, 5)) AS on_levels,
       count(*) = count(dmf_predict_discrete(m.model, t.user_id, t.item_id)) AS all_predicted
FROM ratings_test t, models m WHERE m.name = 'dmfd';
SELECT info->'discrete' AS discrete, info->'levels' AS levels,
       (SELECT bool_and(b1 <= b2) FROM (SELECT b::float8 AS b1, lead(b::float8) OVER (ORDER BY n) AS b2
                                        FROM jsonb_array_elements_text(info->'boundaries') WITH ORDINALITY x(b, n)) s
        WHERE b2 IS NOT NULL) AS boundaries_sorted,
       jsonb_array_length(info->'boundaries') AS inner_boundaries,
       (info->>'lambda')::float8 > 1 AS annealed
FROM (SELECT dmf_info(model) AS info FROM models WHERE name = 'dmfd') s;

-- a plain model rounds to the nearest level (the uniform quantizer)
SELECT bool_and(dmf_predict_discrete(m.model, t.user_id, t.item_id) =
                greatest(1, least(5, floor(dmf_predict(m.model, t.user_id, t.item_id) + 0.5)))) AS plain_rounds
FROM ratings_test t, models m WHERE m.name = 'base';
SELECT info->'discrete' AS discrete, info->'levels' AS levels, info->'boundaries' AS boundaries
FROM (SELECT dmf_info(model) AS info FROM models WHERE name = 'base') s;

-- discrete scores from factors agree with discrete predictions
SELECT bool_and(dmf_score_discrete(m.model, dmf_user_factor(m.model, t.user_id), dmf_item_factor(m.model, t.item_id))
                = dmf_predict_discrete(m.model, t.user_id, t.item_id)) AS score_discrete_agrees
FROM ratings_test t, models m WHERE m.name = 'dmfd';

-- levels other than integers: half stars
CREATE TABLE half_stars AS SELECT user_id, item_id, rating / 2.0 AS rating FROM ratings_train;
SELECT info->'levels' AS levels
FROM (SELECT dmf_info(dmf_train('half_stars', options => test_options('{"discrete": true, "epochs": 2}'))) AS info) s;
SELECT info->'levels' AS levels
FROM (SELECT dmf_info(dmf_train('half_stars', options => test_options('{"discrete": true, "epochs": 2, "levels": [0, 0.5, 1, 1.5, 2, 2.5, 3]}'))) AS info) s;
SELECT info->'levels' AS levels, info->'rating_min' AS rmin, info->'rating_max' AS rmax
FROM (SELECT dmf_info(dmf_train('half_stars', options => test_options('{"discrete": true, "epochs": 2, "levels": [0, 0.5, 1, 1.5, 2, 2.5, 3], "rating_min": 0, "rating_max": 3}'))) AS info) s;

-- errors
SELECT dmf_train('ratings_train', options => '{"discrete": true, "levels": [1, 3, 2]}');
SELECT dmf_train('ratings_train', options => '{"discrete": true, "levels": [1, 2, 4, 5]}');
SELECT dmf_train('ratings_train', options => '{"discrete": true, "levels": [3]}');
SELECT dmf_train('ratings_train', options => '{"discrete": true, "levels": "1..5"}');
SELECT dmf_train('ratings_train', options => '{"discrete": true, "levels": [0, 2, 4, 6]}');
SELECT dmf_train('ratings_train', options => '{"discrete": true, "levels": [1, 3, 5]}');
SELECT dmf_train('ratings_train', options => '{"discrete": "yes"}');
SELECT dmf_train('ratings_train', options => '{"lambda_start": 500, "lambda_max": 100}');
SELECT dmf_train('ratings_train', options => '{"lambda_growth": 0.5}');
CREATE TABLE continuous_ratings AS SELECT user_id, item_id, rating + sin(user_id * item_id) / 3 AS rating FROM ratings_train;
SELECT dmf_train('continuous_ratings', options => '{"discrete": true}');
SELECT dmf_predict_discrete(dmf_train('continuous_ratings', options => test_options('{"epochs": 1}')), 1, 1);
