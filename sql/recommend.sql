-- Recommendations (dmf_recommend) and evaluation (dmf_evaluate).
\set VERBOSITY default

-- a model records who rated what in its training data (and a refreshed one,
-- in the relation it was refreshed from)
SELECT (dmf_info(model)->>'rated_pairs')::bigint = (SELECT count(*) FROM ratings_train) AS base_rated_pairs
FROM models WHERE name = 'base';
SELECT (dmf_info(model)->>'rated_pairs')::bigint > (SELECT count(*) FROM p2_area1_train) AND
       (dmf_info(model)->>'rated_pairs')::bigint <= (SELECT count(*) FROM p2_all_train) AS refreshed_rated_pairs
FROM models WHERE name = 'p2_refreshed';

-- the reference: every item the model knows, ranked by dmf_predict, best
-- first, ties by id, without the items the user rated in training
CREATE TEMP TABLE reference AS
SELECT u.user_id, i.item_id, dmf_predict(m.model, u.user_id, i.item_id) AS p,
       EXISTS (SELECT 1 FROM ratings_train t
               WHERE t.user_id = u.user_id AND t.item_id = i.item_id) AS rated
FROM models m,
     (SELECT DISTINCT user_id FROM ratings_train) u,
     (SELECT DISTINCT item_id FROM ratings_train) i
WHERE m.name = 'base';

CREATE TEMP TABLE top10 AS
SELECT user_id, item_id, p, rated,
       row_number() OVER (PARTITION BY user_id ORDER BY p DESC, item_id) AS rank
FROM reference WHERE NOT rated;
DELETE FROM top10 WHERE rank > 10;

-- all users at once, in one LATERAL query: 10 items each, best first, the
-- same items and scores as ranking dmf_predict
CREATE TEMP TABLE recommended AS
SELECT u.user_id, r.item_id, r.score, r.rank
FROM models m, (SELECT DISTINCT user_id FROM ratings_train) u,
     LATERAL dmf_recommend(m.model, u.user_id) WITH ORDINALITY AS r(item_id, score, rank)
WHERE m.name = 'base';
SELECT count(*) AS rows, count(DISTINCT user_id) AS users,
       bool_and(rank BETWEEN 1 AND 10) AS ranks_1_to_10
FROM recommended;
SELECT count(*) AS users_compared,
       count(*) FILTER (WHERE got_scores = want_scores) AS same_scores,
       count(*) FILTER (WHERE got_items = want_items) AS same_items
FROM (SELECT user_id,
             array_agg(item_id ORDER BY rank) AS got_items,
             array_agg(round(score::numeric, 6) ORDER BY rank) AS got_scores
      FROM recommended GROUP BY user_id) g
JOIN (SELECT user_id,
             array_agg(item_id::bigint ORDER BY rank) AS want_items,
             array_agg(round(p::numeric, 6) ORDER BY rank) AS want_scores
      FROM top10 GROUP BY user_id) w USING (user_id);
-- scores are predictions: exactly what dmf_predict says
SELECT bool_and(r.score = dmf_predict(m.model, r.user_id, r.item_id)) AS score_is_prediction,
       bool_and(NOT f.rated) AS no_rated_item
FROM recommended r JOIN reference f USING (user_id, item_id), models m
WHERE m.name = 'base';

-- exclude_rated => false ranks every item; rated ones do show up then
SELECT count(*) FILTER (WHERE f.rated) > 0 AS rated_items_come_back,
       count(*) = 300 * 10 AS all_rows
FROM (SELECT u.user_id, r.item_id
      FROM models m, (SELECT DISTINCT user_id FROM ratings_train) u,
           LATERAL dmf_recommend(m.model, u.user_id, 10, exclude_rated => false) r
      WHERE m.name = 'base') r
JOIN reference f USING (user_id, item_id);

-- k: 0, a few, more than there are items; negative is an error
SELECT (SELECT count(*) FROM dmf_recommend(model, 1, 0)) AS k0,
       (SELECT count(*) FROM dmf_recommend(model, 1, 3)) AS k3,
       (SELECT count(*) FROM dmf_recommend(model, 1, 100000)) =
       (SELECT count(*) FROM reference WHERE user_id = 1 AND NOT rated) AS k_large_is_every_unrated_item,
       (SELECT count(*) FROM dmf_recommend(model, 1, 100000, false)) AS k_large_all_items
FROM models WHERE name = 'base';
SELECT * FROM dmf_recommend((SELECT model FROM models WHERE name = 'base'), 1, -1);

-- unknown users and NULLs: no rows, never an error
SELECT (SELECT count(*) FROM dmf_recommend(model, 999999)) AS unknown_user,
       (SELECT count(*) FROM dmf_recommend(model, NULL::bigint)) AS null_user,
       (SELECT count(*) FROM dmf_recommend(NULL::bytea, 1)) AS null_model,
       (SELECT count(*) FROM dmf_recommend(model, 1, NULL)) AS null_k
FROM models WHERE name = 'base';

-- from a factor: the stored factor with the rated items excluded by id
-- gives the same list as the user id
SELECT count(*) AS rows,
       bool_and(a.item_id = b.item_id) AS same_items,
       bool_and(abs(a.score - b.score) < 1e-6) AS same_scores
FROM models m,
     LATERAL dmf_recommend(m.model, 7) WITH ORDINALITY a(item_id, score, n)
     JOIN LATERAL dmf_recommend(m.model, dmf_user_factor(m.model, 7), 10,
                                (SELECT array_agg(item_id) FROM ratings_train WHERE user_id = 7))
          WITH ORDINALITY b(item_id, score, n) USING (n)
WHERE m.name = 'base';
-- the factor's length does not matter (scores are cosines); exclude may be NULL
SELECT count(*) AS rows, bool_and(a.item_id = b.item_id) AS scaled_factor_same_items
FROM models m,
     LATERAL dmf_recommend(m.model, dmf_user_factor(m.model, 7)) WITH ORDINALITY a(item_id, score, n)
     JOIN LATERAL dmf_recommend(m.model, (SELECT array_agg(x * 3) FROM unnest(dmf_user_factor(m.model, 7)) x)::real[],
                                10, NULL) WITH ORDINALITY b(item_id, score, n) USING (n)
WHERE m.name = 'base';
SELECT count(*) AS zero_factor_rows
FROM models m, LATERAL dmf_recommend(m.model, array_fill(0, ARRAY[16])::real[]) r
WHERE m.name = 'base';
SELECT * FROM dmf_recommend((SELECT model FROM models WHERE name = 'base'), ARRAY[1, 2, 3]::real[]);
SELECT * FROM dmf_recommend((SELECT model FROM models WHERE name = 'base'), ARRAY[[1, 2], [3, 4]]::real[]);

-- a user added after training: no rows from the trained model by id; from
-- the factor of its ratings (the aggregate) ten items it did not rate; and
-- after dmf_refresh by id, without the items it rated
SELECT min(user_id) AS new_user FROM p2 WHERE new_user AND NOT is_test \gset
SELECT (SELECT count(*) FROM dmf_recommend(model, :new_user)) AS by_id_before_refresh
FROM models WHERE name = 'p2';
CREATE TEMP TABLE new_user_recs AS
SELECT r.*
FROM models m,
     LATERAL (SELECT dmf_user_factor(m.model, t.item_id, t.rating) AS f,
                     array_agg(t.item_id) AS seen
              FROM p2_all_train t WHERE t.user_id = :new_user) uf,
     LATERAL dmf_recommend(m.model, uf.f, 10, uf.seen) r
WHERE m.name = 'p2';
SELECT count(*) AS from_factor,
       count(*) FILTER (WHERE item_id IN (SELECT item_id FROM p2_all_train WHERE user_id = :new_user)) AS rated_among_them
FROM new_user_recs;
SELECT count(*) AS after_refresh,
       count(*) FILTER (WHERE r.item_id IN (SELECT item_id FROM p2_all_train WHERE user_id = :new_user)) AS rated_among_them,
       bool_and(r.score = dmf_predict(m.model, :new_user, r.item_id)) AS score_is_prediction
FROM models m, LATERAL dmf_recommend(m.model, :new_user) r
WHERE m.name = 'p2_refreshed';

-- parallel safe: a parallel plan over many users
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
CREATE TABLE rec_users AS SELECT g AS user_id FROM generate_series(1, 300) g;
ANALYZE rec_users;
SELECT count(*) AS rows, sum(r.item_id) = (SELECT sum(item_id) FROM recommended) AS same_items
FROM rec_users u, LATERAL dmf_recommend((SELECT model FROM models WHERE name = 'base'), u.user_id) r;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- dmf_evaluate: the same figures as computing them in SQL
SELECT e.n = (SELECT count(*) FROM ratings_test) AS n_is_rows,
       e.covered = (SELECT count(dmf_predict(m.model, user_id, item_id)) FROM ratings_test) AS covered_is_predicted,
       abs(e.rmse - s.rmse) < 1e-9 AS rmse_matches,
       abs(e.mae - s.mae) < 1e-9 AS mae_matches,
       abs(e.rmse_discrete - s.rmse_discrete) < 1e-9 AS rmse_discrete_matches,
       abs(e.mae_discrete - s.mae_discrete) < 1e-9 AS mae_discrete_matches,
       e.rmse < 1.0 AS rmse_sane
FROM models m,
     LATERAL dmf_evaluate(m.model, 'ratings_test') e,
     LATERAL (SELECT sqrt(avg((dmf_predict(m.model, user_id, item_id) - rating) ^ 2)) AS rmse,
                     avg(abs(dmf_predict(m.model, user_id, item_id) - rating)) AS mae,
                     sqrt(avg((dmf_predict_discrete(m.model, user_id, item_id) - rating) ^ 2)) AS rmse_discrete,
                     avg(abs(dmf_predict_discrete(m.model, user_id, item_id) - rating)) AS mae_discrete
              FROM ratings_test) s
WHERE m.name = 'base';

-- partial coverage: rows of unknown users and items count in n only
SELECT n, covered, n - covered AS not_covered
FROM models m, LATERAL dmf_evaluate(m.model, 'p2_all_train') e WHERE m.name = 'p2';
SELECT n = covered AS all_covered_after_refresh
FROM models m, LATERAL dmf_evaluate(m.model, 'p2_all_train') e WHERE m.name = 'p2_refreshed';

-- named columns, NULL rows skipped with a notice, an empty relation
CREATE TABLE held_out (who bigint, what int, stars numeric);
INSERT INTO held_out SELECT user_id, item_id, rating FROM ratings_test WHERE user_id <= 20;
INSERT INTO held_out VALUES (1, NULL, 3), (NULL, 1, 3), (1, 1, NULL);
SELECT n, covered, rmse IS NOT NULL AS has_rmse
FROM models m, LATERAL dmf_evaluate(m.model, 'held_out', 'who', 'what', 'stars') e WHERE m.name = 'base';
CREATE TABLE no_ratings (user_id int, item_id int, rating int);
SELECT * FROM dmf_evaluate((SELECT model FROM models WHERE name = 'base'), 'no_ratings');

-- a model without rating levels has no discrete errors
SELECT rmse IS NOT NULL AS rmse, rmse_discrete IS NULL AS no_discrete
FROM dmf_evaluate(dmf_train('continuous_ratings', options => test_options('{"epochs": 2}')), 'continuous_ratings');

-- bad arguments
SELECT * FROM dmf_evaluate((SELECT model FROM models WHERE name = 'base'), 'ratings_test', 'nope');
SELECT * FROM dmf_evaluate((SELECT model FROM models WHERE name = 'base'), 'no_such_table');
SELECT * FROM dmf_evaluate((SELECT model FROM models WHERE name = 'base'), NULL);
SELECT * FROM dmf_evaluate('\x00'::bytea, 'ratings_test');

-- evaluation reads as the caller
CREATE ROLE dmf_evaluator;
GRANT SELECT ON models TO dmf_evaluator;
SET ROLE dmf_evaluator;
SELECT * FROM dmf_evaluate((SELECT model FROM models WHERE name = 'base'), 'ratings_test');
RESET ROLE;
DROP OWNED BY dmf_evaluator;
DROP ROLE dmf_evaluator;
