-- Implicit feedback: interactions instead of ratings, and ranking metrics.
\set VERBOSITY default

-- a planted structure: 4 tastes; a user interacts with 24 items, 21 of its
-- own taste and 3 of others; every item is about as popular as any other,
-- so popularity cannot tell a user's taste, and a good model must
CREATE TABLE clicks AS
SELECT u AS user_id,
       CASE WHEN j < 21 THEN (u % 4) + 4 * ((u * 7 + j * 13) % 60)
            ELSE ((u + 1 + j) % 4) + 4 * ((u * 11 + j * 17) % 60) END AS item_id
FROM generate_series(1, 400) u, generate_series(0, 23) j;
-- each user's held-out interaction, chosen by a hash; the rest to train on
CREATE TABLE clicks_pairs AS SELECT DISTINCT user_id, item_id FROM clicks;
CREATE TABLE clicks_heldout AS
SELECT DISTINCT ON (user_id) user_id, item_id FROM clicks_pairs
ORDER BY user_id, hashtext(user_id || ':' || item_id), item_id;
CREATE TABLE clicks_train AS
SELECT c.* FROM clicks c
WHERE NOT EXISTS (SELECT 1 FROM clicks_heldout h WHERE h.user_id = c.user_id AND h.item_id = c.item_id);
SELECT count(*) > count(DISTINCT (user_id, item_id)) AS has_repeated_interactions FROM clicks_train;

CREATE TABLE implicit_models (name text PRIMARY KEY, model bytea);
ALTER TABLE implicit_models ALTER COLUMN model SET STORAGE EXTERNAL;
-- a NULL rating column: every row is one interaction, repeats add up
INSERT INTO implicit_models
SELECT 'clicks', dmf_train('clicks_train', 'user_id', 'item_id', NULL,
                           '{"feedback": "implicit", "epochs": 40, "seed": 3, "threads": 1}');

SELECT i->>'feedback' AS feedback, i->>'discrete' AS discrete,
       (i->>'fold_in_steps')::int AS fold_in_steps,
       (i->>'rating_min')::float8 AS score_min, (i->>'rating_max')::float8 AS score_max,
       (i->'options'->>'negatives')::int AS negatives,
       (i->>'rows')::bigint = (SELECT count(DISTINCT (user_id, item_id)) FROM clicks_train) AS rows_are_pairs,
       (i->>'merged_rows')::bigint = (SELECT count(*) - count(DISTINCT (user_id, item_id)) FROM clicks_train) AS merged_rows,
       (i->>'best_validation_rmse')::float8 < (i->>'mean_validation_rmse')::float8 AS beats_the_mean
FROM (SELECT dmf_info(model) AS i FROM implicit_models WHERE name = 'clicks') s;

-- the implicit defaults (chosen on validation): step 0.006, 60 epochs and
-- no dropout, unless given; given values are kept
SELECT i->'options'->>'learning_rate' AS learning_rate, i->'options'->>'epochs' AS epochs,
       i->'options'->>'dropout' AS dropout
FROM (SELECT dmf_info(dmf_train('clicks_train', 'user_id', 'item_id', NULL,
                                '{"feedback": "implicit", "seed": 3, "threads": 1}')) AS i
      UNION ALL
      SELECT dmf_info(dmf_train('clicks_train', 'user_id', 'item_id', NULL,
                                '{"feedback": "implicit", "seed": 3, "threads": 1, "epochs": 2,
                                  "learning_rate": 0.003, "dropout": 0.1}'))) s;

-- scores lie in (0, 1); a user's own taste scores higher than the others
SELECT bool_and(p > 0 AND p < 1) AS scores_in_0_1,
       avg(p) FILTER (WHERE u % 4 = i % 4) > avg(p) FILTER (WHERE u % 4 <> i % 4) + 0.3 AS own_taste_higher
FROM (SELECT u, i, dmf_predict(m.model, u, i) AS p
      FROM implicit_models m, generate_series(1, 400, 7) u, generate_series(0, 239) i
      WHERE m.name = 'clicks') s;

-- dmf_evaluate_ranking against the same metrics computed in SQL from
-- dmf_recommend: a user's hits at k are the held-out items of its top k
CREATE TEMP TABLE ranked AS
SELECT h.user_id, r.rank
FROM implicit_models m, clicks_heldout h,
     LATERAL dmf_recommend(m.model, h.user_id, 10) WITH ORDINALITY AS r(item_id, score, rank)
WHERE m.name = 'clicks' AND r.item_id = h.item_id;
CREATE TEMP TABLE sql_metrics AS
SELECT count(*)::float8 / 400 AS hit_rate,
       sum(1 / log(2, rank + 1))::float8 / 400 AS ndcg,
       sum(1.0 / rank)::float8 / 400 AS map
FROM ranked;
SELECT e.users, abs(e.hit_rate - s.hit_rate) < 1e-12 AS same_hit_rate,
       abs(e.recall - s.hit_rate) < 1e-12 AS recall_is_hit_rate,
       abs(e.precision - s.hit_rate / 10) < 1e-12 AS same_precision,
       abs(e.ndcg - s.ndcg) < 1e-9 AS same_ndcg,
       abs(e.map - s.map) < 1e-9 AS same_map
FROM implicit_models m, dmf_evaluate_ranking(m.model, 'clicks_heldout', k => 10) e, sql_metrics s
WHERE m.name = 'clicks';

-- clearly better than popularity: the 10 most popular items a user has not
-- interacted with, ties by id
CREATE TEMP TABLE popularity AS
SELECT item_id, count(*) AS n FROM clicks_train GROUP BY item_id;
SELECT e.hit_rate > 2 * p.hit_rate AS beats_popularity, e.hit_rate > 0.5 AS model_hit_rate_above_half
FROM implicit_models m, dmf_evaluate_ranking(m.model, 'clicks_heldout') e,
     (SELECT avg((h.item_id IN (SELECT q.item_id FROM popularity q
                                WHERE NOT EXISTS (SELECT 1 FROM clicks_train t
                                                  WHERE t.user_id = h.user_id AND t.item_id = q.item_id)
                                ORDER BY q.n DESC, q.item_id LIMIT 10))::int) AS hit_rate
      FROM clicks_heldout h) p
WHERE m.name = 'clicks';

-- recommendations leave out what a user interacted with
SELECT count(*) AS recommended_already_seen
FROM implicit_models m, generate_series(1, 400, 3) u,
     LATERAL dmf_recommend(m.model, u, 10) r
WHERE m.name = 'clicks'
  AND EXISTS (SELECT 1 FROM clicks_train t WHERE t.user_id = u AND t.item_id = r.item_id);

-- a weight column: a pair's weight is the sum of its rows'
CREATE TABLE plays AS
SELECT user_id, item_id, count(*)::int * 30 AS seconds FROM clicks_train GROUP BY 1, 2;
INSERT INTO implicit_models
SELECT 'plays', dmf_train('plays', 'user_id', 'item_id', 'seconds',
                          '{"feedback": "implicit", "epochs": 5, "seed": 3, "threads": 1}');
SELECT (dmf_info(model)->>'rows')::bigint AS pairs, dmf_info(model)->>'merged_rows' AS merged_rows
FROM implicit_models WHERE name = 'plays';

-- users that arrive later: dmf_refresh and the aggregate give them the same
-- factor, from their interactions alone (no fold-in: the branch's factor),
-- and their recommendations follow their taste
CREATE TABLE clicks_new AS
SELECT 1000 + u AS user_id, (u % 4) + 4 * ((u * 5 + j * 7) % 60) AS item_id
FROM generate_series(1, 8) u, generate_series(0, 11) j;
CREATE VIEW clicks_all AS SELECT user_id, item_id FROM clicks_train UNION ALL SELECT * FROM clicks_new;
INSERT INTO implicit_models
SELECT 'refreshed', dmf_refresh(model, 'clicks_all', 'user_id', 'item_id', NULL)
FROM implicit_models WHERE name = 'clicks';
SELECT count(*) AS new_users,
       max((SELECT max(abs(a - b)) FROM unnest(f_refresh, f_agg) x(a, b))) < 1e-5 AS same_factors,
       bool_and(own_taste >= 8) AS own_taste_recommended
FROM (SELECT n.user_id,
             dmf_user_factor(r.model, n.user_id) AS f_refresh,
             (SELECT dmf_user_factor(c.model, x.item_id, 1)
              FROM (SELECT * FROM clicks_new UNION ALL SELECT * FROM clicks_new) x   -- repeats count once
              WHERE x.user_id = n.user_id) AS f_agg,
             (SELECT count(*) FROM dmf_recommend(r.model, n.user_id, 10) q
              WHERE q.item_id % 4 = (n.user_id - 1000) % 4) AS own_taste
      FROM (SELECT DISTINCT user_id FROM clicks_new) n,
           implicit_models r, implicit_models c
      WHERE r.name = 'refreshed' AND c.name = 'clicks') s;
-- the training users keep their factors and predictions
SELECT bool_and(dmf_predict(r.model, u, i) = dmf_predict(c.model, u, i)) AS same_predictions
FROM implicit_models r, implicit_models c, generate_series(1, 400, 13) u, generate_series(0, 239, 7) i
WHERE r.name = 'refreshed' AND c.name = 'clicks';

-- errors
CREATE TABLE bad_weights AS SELECT user_id, item_id, 1 AS w FROM clicks_train;
UPDATE bad_weights SET w = 0 WHERE user_id = 5 AND item_id = (SELECT min(item_id) FROM bad_weights WHERE user_id = 5);
SELECT dmf_train('bad_weights', 'user_id', 'item_id', 'w', '{"feedback": "implicit"}');
SELECT dmf_train('clicks_train', 'user_id', 'item_id', NULL, '{}');
SELECT dmf_train('plays', 'user_id', 'item_id', 'seconds', '{"negatives": 4}');
SELECT dmf_train('clicks_train', 'user_id', 'item_id', NULL, '{"feedback": "implicit", "discrete": true}');
SELECT dmf_train('clicks_train', 'user_id', 'item_id', NULL, '{"feedback": "implicit", "negatives": 0}');
-- negatives are drawn per block: implicit feedback trains on blocks
SELECT dmf_train('clicks_train', 'user_id', 'item_id', NULL, '{"feedback": "implicit", "schedule": "alternating"}');
-- and keeps the blocks' stopping rule: patience 6, one plateau cut
SELECT i->'options'->>'schedule' AS schedule, i->'options'->>'patience' AS patience,
       i->'options'->>'plateau_drops' AS plateau_drops
FROM (SELECT dmf_info(model) AS i FROM implicit_models WHERE name = 'clicks') s;
SELECT dmf_train('clicks_train', 'user_id', 'item_id', NULL, '{"feedback": "both"}');
SELECT dmf_predict_discrete(model, 1, 1) FROM implicit_models WHERE name = 'clicks';
SELECT * FROM implicit_models m, dmf_evaluate(m.model, 'plays', 'user_id', 'item_id', 'seconds') WHERE m.name = 'clicks';
SELECT * FROM implicit_models m, dmf_evaluate_ranking(m.model, 'clicks_heldout', k => 0) WHERE m.name = 'clicks';
SELECT dmf_refresh(model, 'bad_weights', 'user_id', 'item_id', 'w') FROM implicit_models WHERE name = 'clicks';
SELECT dmf_user_factor(model, item_id, 0) FROM implicit_models, clicks_new WHERE name = 'clicks' AND user_id = 1001 GROUP BY model;
SELECT dmf_refresh(model, 'ratings_train', 'user_id', 'item_id', NULL) FROM models WHERE name = 'base';
SELECT * FROM models m, dmf_evaluate_ranking(m.model, 'ratings_test', 'user_id', 'nope') WHERE m.name = 'base';
