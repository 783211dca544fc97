-- dmf_train(..., init => model): a warm start from a trained model's weights.

-- the model's own users and items, a step too small to move a weight: the
-- same predictions as the init model; a cold start with that step predicts
-- something else
CREATE TEMP TABLE still AS
SELECT dmf_train('ratings_train', options => test_options('{"epochs": 1, "learning_rate": 1e-9}'),
                 init => (SELECT model FROM models WHERE name = 'base')) AS warm,
       dmf_train('ratings_train', options => test_options('{"epochs": 1, "learning_rate": 1e-9}')) AS cold;
SELECT max(abs(dmf_predict(s.warm, t.user_id, t.item_id) - dmf_predict(b.model, t.user_id, t.item_id))) < 1e-3
           AS warm_predicts_as_init,
       max(abs(dmf_predict(s.cold, t.user_id, t.item_id) - dmf_predict(b.model, t.user_id, t.item_id))) > 0.1
           AS cold_does_not
FROM ratings_test t, still s, models b WHERE b.name = 'base';

-- new ratings, 40 new users and 20 new items, 30 users gone: the model
-- knows the new ones without a refresh, drops the gone ones, and learns
-- from its init (a few epochs reach what a cold start reaches in more)
CREATE TEMP TABLE grown AS
SELECT user_id, item_id, rating FROM ratings_train WHERE user_id > 30
UNION ALL
SELECT u + 300, i, 1 + (u * 7 + i * 3) % 5 FROM generate_series(1, 40) u, generate_series(1, 220) i
WHERE (u + i) % 4 = 0;
CREATE TEMP TABLE warm AS
SELECT dmf_train('grown', options => test_options('{"epochs": 4}'),
                 init => (SELECT model FROM models WHERE name = 'base')) AS model;
SELECT (i->>'users')::int AS users, (i->>'items')::int AS items,
       dmf_predict(w.model, 1, 1) IS NULL AS gone_user,
       dmf_predict(w.model, 340, 220) BETWEEN 1 AND 5 AS new_user_new_item,
       (i->>'best_validation_rmse')::float8 <
       (SELECT (dmf_info(dmf_train('grown', options => test_options('{"epochs": 4}')))->>'best_validation_rmse')::float8)
           AS warm_ahead_of_cold,
       i->'options'->'patience' AS patience, i->'options'->'plateau_drops' AS plateau_drops
FROM warm w, LATERAL (SELECT dmf_info(w.model) AS i) s;

-- the rating scale is the model's unless given: ratings of 1 to 4 stars
-- keep the model's 5, where a cold start would take 4 from the data
CREATE TEMP TABLE four_stars AS SELECT * FROM ratings_train WHERE rating <= 4;
SELECT dmf_info(dmf_train('four_stars', options => test_options('{"epochs": 1}'),
                          init => (SELECT model FROM models WHERE name = 'base')))->'options'->'rating_max'
       AS warm_rating_max,
       dmf_info(dmf_train('four_stars', options => test_options('{"epochs": 1}')))->'options'->'rating_max'
       AS cold_rating_max;
-- the model's rows found by id: a user 0 and an item 0 shift every input
-- position by one, and the other users and items still start where they were
CREATE TEMP TABLE shifted AS SELECT * FROM ratings_train UNION ALL SELECT 0, 0, 3;
SELECT max(abs(dmf_predict(w.model, t.user_id, t.item_id) - dmf_predict(b.model, t.user_id, t.item_id))) < 1e-3
           AS same_after_shift
FROM ratings_test t, models b,
     (SELECT dmf_train('shifted', options => test_options('{"epochs": 1, "learning_rate": 1e-9}'),
                       init => (SELECT model FROM models WHERE name = 'base')) AS model) w
WHERE b.name = 'base';

-- DMF-D from DMF-D on the same levels starts from the init's boundaries (a
-- step too small to move them, no validation to calibrate them on: the
-- init's come out); a cold DMF-D starts from the uniform ones
CREATE TEMP TABLE dmfd AS
SELECT dmf_train('ratings_train', options => test_options('{"discrete": true, "epochs": 3}')) AS model;
SELECT dmf_info(d.model)->'boundaries' <> '[1.5, 2.5, 3.5, 4.5]'::jsonb AS init_learned,
       (SELECT max(abs(w.b::float8 - i.b::float8))
        FROM jsonb_array_elements_text(dmf_info(dmf_train('ratings_train',
                 options => test_options('{"discrete": true, "epochs": 1, "learning_rate": 1e-9, "validation_fraction": 0}'),
                 init => d.model))->'boundaries') WITH ORDINALITY w(b, k)
        JOIN jsonb_array_elements_text(dmf_info(d.model)->'boundaries') WITH ORDINALITY i(b, k) USING (k)) < 1e-6
           AS warm_keeps_them,
       (SELECT array_agg(round(c.b::numeric, 3) ORDER BY k)
        FROM jsonb_array_elements_text(dmf_info(dmf_train('ratings_train',
                 options => test_options('{"discrete": true, "epochs": 1, "learning_rate": 1e-9, "validation_fraction": 0}')))
                 ->'boundaries') WITH ORDINALITY c(b, k)) AS cold_boundaries
FROM dmfd d;

-- implicit feedback from an implicit model (the blocks schedule and its rule)
CREATE TEMP TABLE clicks AS
SELECT user_id, item_id FROM ratings_train WHERE rating >= 4;
CREATE TEMP TABLE implicit_init AS
SELECT dmf_train('clicks', rating_column => NULL,
                 options => test_options('{"feedback": "implicit", "epochs": 2}')) AS model;
SELECT dmf_info(w.model)->>'feedback' AS feedback, (dmf_info(w.model)->>'epochs_run')::int AS epochs_run,
       dmf_info(w.model)->'options'->'patience' AS patience,
       dmf_predict(w.model, u.user_id, u.item_id) BETWEEN 0 AND 1 AS scores
FROM (SELECT dmf_train('clicks', rating_column => NULL,
                       options => test_options('{"feedback": "implicit", "epochs": 2}'),
                       init => (SELECT model FROM implicit_init)) AS model) w,
     (SELECT * FROM clicks ORDER BY user_id, item_id LIMIT 1) u;

-- an init that cannot be: a clear ERROR naming what differs
\set VERBOSITY default
SELECT dmf_train('ratings_train', options => test_options('{"layers": [32]}'),
                 init => (SELECT model FROM models WHERE name = 'base'));
SELECT dmf_train('ratings_train', options => test_options() - 'layers' || '{"user_layers": [64], "item_layers": [64, 16]}',
                 init => (SELECT model FROM models WHERE name = 'base'));
SELECT dmf_train('ratings_train', options => test_options('{"dim": 8}'),
                 init => (SELECT model FROM models WHERE name = 'base'));
SELECT dmf_train('ratings_train', options => test_options('{"activation": "tanh"}'),
                 init => (SELECT model FROM models WHERE name = 'base'));
SELECT dmf_train('ratings_train', options => test_options('{"row_scale": "mean"}'),
                 init => (SELECT model FROM models WHERE name = 'base'));
SELECT dmf_train('ratings_train', options => test_options('{"rating_max": 10}'),
                 init => (SELECT model FROM models WHERE name = 'base'));
SELECT dmf_train('ratings_train', rating_column => NULL,
                 options => test_options('{"feedback": "implicit"}'),
                 init => (SELECT model FROM models WHERE name = 'base'));
SELECT dmf_train('ratings_train', options => test_options(), init => (SELECT model FROM implicit_init));
SELECT dmf_train('ratings_train', options => test_options(), init => '\x00010203'::bytea);
SELECT dmf_train('ratings_train', options => test_options(),
                 init => (SELECT overlay(model PLACING '\xdeadbeef'::bytea FROM 3000) FROM models WHERE name = 'base'));
\set VERBOSITY terse
