-- Serving: candidates, cold start, similar items and users, targeting,
-- factor export and explanations; each checked against the same answer
-- computed in plain SQL from dmf_predict or the exported factors.
\set VERBOSITY default

-- ---- factor export: exactly dmf_user_factor / dmf_item_factor, ids ascending ----
CREATE TEMP TABLE item_f AS
SELECT f.* FROM models m, dmf_item_factors(m.model) WITH ORDINALITY f WHERE m.name = 'base';
CREATE TEMP TABLE user_f AS
SELECT f.* FROM models m, dmf_user_factors(m.model) WITH ORDINALITY f WHERE m.name = 'base';
SELECT (SELECT count(*) FROM item_f) = (SELECT count(DISTINCT item_id) FROM ratings_train) AS every_item,
       (SELECT count(*) FROM user_f) = (SELECT count(DISTINCT user_id) FROM ratings_train) AS every_user,
       (SELECT bool_and(f.factor = dmf_item_factor(m.model, f.item_id)) FROM item_f f, models m WHERE m.name = 'base') AS items_equal,
       (SELECT bool_and(f.factor = dmf_user_factor(m.model, f.user_id)) FROM user_f f, models m WHERE m.name = 'base') AS users_equal,
       (SELECT bool_and(ordinality = rank) FROM (SELECT ordinality, row_number() OVER (ORDER BY item_id) AS rank FROM item_f) s) AS items_ascending,
       (SELECT bool_and(ordinality = rank) FROM (SELECT ordinality, row_number() OVER (ORDER BY user_id) AS rank FROM user_f) s) AS users_ascending;
-- an entity without a factor is left out, as dmf_user_factor returns NULL for it
SELECT count(*) = count(dmf_user_factor(m.model, f.user_id)) AS only_users_with_factors
FROM models m, dmf_user_factors(m.model) f WHERE m.name = 'p2_refreshed';

-- cosine of two exported factors, in SQL
CREATE FUNCTION pg_temp.cosine(a real[], b real[]) RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
  SELECT sum(x::float8 * y) / sqrt(sum(x::float8 * x) * sum(y::float8 * y))
  FROM unnest(a, b) AS t(x, y) $$;

-- ---- dmf_similar_items / dmf_similar_users ----
CREATE TEMP TABLE similar_got AS
SELECT i.item_id AS of_item, s.item_id, s.similarity, s.rank
FROM models m, (SELECT item_id FROM item_f WHERE item_id % 7 = 0) i,
     LATERAL dmf_similar_items(m.model, i.item_id, 5) WITH ORDINALITY AS s(item_id, similarity, rank)
WHERE m.name = 'base';
CREATE TEMP TABLE similar_want AS
SELECT * FROM (
  SELECT a.item_id AS of_item, b.item_id, pg_temp.cosine(a.factor, b.factor) AS similarity,
         row_number() OVER (PARTITION BY a.item_id ORDER BY pg_temp.cosine(a.factor, b.factor) DESC, b.item_id) AS rank
  FROM item_f a, item_f b WHERE a.item_id % 7 = 0 AND b.item_id <> a.item_id) s
WHERE rank <= 5;
SELECT count(*) AS rows,
       count(*) FILTER (WHERE g.item_id = w.item_id) AS same_items,
       count(*) FILTER (WHERE abs(g.similarity - w.similarity) < 1e-12) AS same_similarity,
       count(*) FILTER (WHERE g.item_id = g.of_item) AS itself
FROM similar_got g JOIN similar_want w USING (of_item, rank);

CREATE TEMP TABLE similar_users_got AS
SELECT u.user_id AS of_user, s.user_id, s.similarity, s.rank
FROM models m, (SELECT user_id FROM user_f WHERE user_id % 25 = 0) u,
     LATERAL dmf_similar_users(m.model, u.user_id, 4) WITH ORDINALITY AS s(user_id, similarity, rank)
WHERE m.name = 'base';
SELECT count(*) AS rows,
       count(*) FILTER (WHERE g.user_id = w.user_id AND abs(g.similarity - w.similarity) < 1e-12) AS same
FROM similar_users_got g
JOIN (SELECT * FROM (
        SELECT a.user_id AS of_user, b.user_id, pg_temp.cosine(a.factor, b.factor) AS similarity,
               row_number() OVER (PARTITION BY a.user_id ORDER BY pg_temp.cosine(a.factor, b.factor) DESC, b.user_id) AS rank
        FROM user_f a, user_f b WHERE a.user_id % 25 = 0 AND b.user_id <> a.user_id) s
      WHERE rank <= 4) w USING (of_user, rank);
-- an id the model does not know, or k = 0: no rows
SELECT (SELECT count(*) FROM models m, dmf_similar_items(m.model, 99999) WHERE m.name = 'base') AS unknown_item,
       (SELECT count(*) FROM models m, dmf_similar_users(m.model, 1, 0) WHERE m.name = 'base') AS k_zero;

-- ---- candidates: only those items, in dmf_predict's order ----
CREATE TEMP TABLE cand AS
SELECT ARRAY[3, 17, 17, 42, 57, 88, 101, 133, 150, 199, NULL, 99999, -4]::bigint[] AS items;
CREATE TEMP TABLE cand_got AS
SELECT u AS user_id, r.item_id, r.score, r.rank, e AS exclude_rated
FROM models m, cand c, generate_series(1, 300, 11) u, (VALUES (true), (false)) x(e),
     LATERAL dmf_recommend(m.model, u, 4, e, c.items) WITH ORDINALITY AS r(item_id, score, rank)
WHERE m.name = 'base';
CREATE TEMP TABLE cand_want AS
SELECT * FROM (
  SELECT u AS user_id, i AS item_id, dmf_predict(m.model, u, i) AS score, e AS exclude_rated,
         row_number() OVER (PARTITION BY u, e ORDER BY dmf_predict(m.model, u, i) DESC, i) AS rank
  FROM models m, generate_series(1, 300, 11) u, (VALUES (true), (false)) x(e),
       (SELECT DISTINCT i FROM cand, unnest(items) i WHERE i IN (SELECT item_id FROM item_f)) ci
  WHERE m.name = 'base'
    AND NOT (e AND EXISTS (SELECT 1 FROM ratings_train t WHERE t.user_id = u AND t.item_id = ci.i))) s
WHERE rank <= 4;
SELECT (SELECT count(*) FROM cand_got) AS got, (SELECT count(*) FROM cand_want) AS want,
       count(*) FILTER (WHERE g.item_id = w.item_id AND g.score = w.score) AS same
FROM cand_got g JOIN cand_want w USING (user_id, exclude_rated, rank);
-- the factor form ranks the same candidates the same way (its scores come
-- from the factor scaled to unit length in float: equal to 1e-6)
SELECT bool_and(a.item_id = b.item_id AND abs(a.score - b.score) < 1e-6) AS factor_form_same, count(*) AS rows
FROM (SELECT u, r.* FROM models m, cand c, generate_series(1, 300, 11) u,
             LATERAL dmf_recommend(m.model, u, 4, false, c.items) WITH ORDINALITY r
      WHERE m.name = 'base') a
JOIN (SELECT u, r.* FROM models m, cand c, generate_series(1, 300, 11) u,
             LATERAL dmf_recommend(m.model, dmf_user_factor(m.model, u), 4, NULL, c.items) WITH ORDINALITY r
      WHERE m.name = 'base') b USING (u, ordinality);
-- no candidate, or none the model knows: no rows
SELECT (SELECT count(*) FROM models m, dmf_recommend(m.model, 1, 10, candidates => '{}') WHERE m.name = 'base') AS empty,
       (SELECT count(*) FROM models m, dmf_recommend(m.model, 1, 10, candidates => '{99998,99999}') WHERE m.name = 'base') AS unknown;

-- a bfloat16 model's factors are unit vectors only to 8 bits: rankings
-- still follow dmf_predict exactly
SELECT count(*) AS users, count(*) FILTER (WHERE got = want) AS same_order
FROM (SELECT u,
             (SELECT array_agg(item_id ORDER BY ord) FROM dmf_recommend(m.model, u, 10) WITH ORDINALITY r(item_id, score, ord)) AS got,
             (SELECT array_agg(item_id ORDER BY p DESC, item_id) FROM (
                SELECT i.item_id, dmf_predict(m.model, u, i.item_id) AS p FROM item_f i
                WHERE NOT EXISTS (SELECT 1 FROM ratings_train t WHERE t.user_id = u AND t.item_id = i.item_id)
                ORDER BY p DESC, i.item_id LIMIT 10) t) AS want
      FROM models m, generate_series(1, 300, 23) u WHERE m.name = 'compact') s;

-- every ranking is in dmf_predict's order, also among near-ties of the
-- float sgemv (an implicit model's scores crowd near 0 and 1)
SELECT count(*) AS rows, count(*) FILTER (WHERE score > prev) AS out_of_order
FROM (SELECT r.score, lag(r.score) OVER (PARTITION BY u ORDER BY r.ord) AS prev
      FROM implicit_models m, generate_series(1, 400, 7) u,
           LATERAL dmf_recommend(m.model, u, 240, false) WITH ORDINALITY r(item_id, score, ord)
      WHERE m.name = 'clicks') s;
SELECT count(*) AS rows, count(*) FILTER (WHERE similarity > prev) AS out_of_order
FROM (SELECT r.similarity, lag(r.similarity) OVER (PARTITION BY i ORDER BY r.ord) AS prev
      FROM implicit_models m, generate_series(0, 239, 9) i,
           LATERAL dmf_similar_items(m.model, i, 240) WITH ORDINALITY r(item_id, similarity, ord)
      WHERE m.name = 'clicks') s;
-- a k far beyond the rows: every row, no huge allocation
SELECT (SELECT count(*) FROM models m, dmf_similar_items(m.model, 3, 2147483647) WHERE m.name = 'base') AS similar_items,
       (SELECT count(*) FROM models m, dmf_similar_users(m.model, 3, 2147483647) WHERE m.name = 'base') AS similar_users,
       (SELECT count(*) FROM models m, dmf_recommend_users(m.model, 3, 2147483647, false) WHERE m.name = 'base') AS users,
       (SELECT count(*) FROM models m, dmf_recommend(m.model, 3, 2147483647, false) WHERE m.name = 'base') AS items,
       (SELECT count(*) FROM models m, dmf_popular_items(m.model, 2147483647) WHERE m.name = 'base') AS popular;

-- ---- cold start: popularity, counted from the model's users' rows ----
CREATE TEMP TABLE popular_want AS
SELECT item_id, count(DISTINCT user_id) AS users,
       row_number() OVER (ORDER BY count(DISTINCT user_id) DESC, item_id) AS rank
FROM ratings_train GROUP BY item_id;
SELECT count(*) AS rows, count(*) FILTER (WHERE p.item_id = w.item_id AND p.users = w.users) AS same
FROM (SELECT r.*, row_number() OVER () AS rank FROM models m, dmf_popular_items(m.model, 8) r
      WHERE m.name = 'base') p JOIN popular_want w USING (rank);
-- among candidates
SELECT array_agg(item_id ORDER BY ord) = (SELECT array_agg(item_id ORDER BY rank) FROM (
          SELECT item_id, row_number() OVER (ORDER BY users DESC, item_id) AS rank
          FROM popular_want WHERE item_id IN (3, 17, 42, 57, 88)) s)::bigint[] AS popular_among_candidates
FROM models m, dmf_popular_items(m.model, 10, '{3,17,42,57,88,99999}') WITH ORDINALITY r(item_id, users, ord)
WHERE m.name = 'base';
-- the counts are kept for the model last counted: calls that alternate
-- between models each get their own model's counts
SELECT bool_and(got = want) AS alternating_models, count(*) AS calls
FROM (SELECT n, (SELECT array_agg(p.item_id ORDER BY p.item_id) FROM dmf_popular_items(x.model, 3) p) AS got, x.want
      FROM generate_series(1, 6) n,
           LATERAL (SELECT m.model, (SELECT array_agg(item_id::bigint ORDER BY item_id) FROM (SELECT item_id FROM popular_want WHERE rank <= 3) t) AS want
                    FROM models m WHERE m.name = 'base' AND n % 2 = 0
                    UNION ALL
                    SELECT m.model, (SELECT array_agg(item_id::bigint ORDER BY item_id) FROM (
                               SELECT item_id FROM clicks_train GROUP BY item_id
                               ORDER BY count(DISTINCT user_id) DESC, item_id LIMIT 3) t)
                    FROM implicit_models m WHERE m.name = 'clicks' AND n % 2 = 1) x) s;
-- a user without a factor: nothing, or with cold_start the popular items, score NULL
SELECT (SELECT count(*) FROM models m, dmf_recommend(m.model, 5000, 5) WHERE m.name = 'base') AS without_cold_start,
       (SELECT array_agg(item_id ORDER BY ord) FROM models m,
               dmf_recommend(m.model, 5000, 5, cold_start => true) WITH ORDINALITY r(item_id, score, ord)
        WHERE m.name = 'base') = (SELECT array_agg(item_id ORDER BY rank) FROM popular_want WHERE rank <= 5)::bigint[] AS cold_start_popular,
       (SELECT bool_and(score IS NULL) FROM models m, dmf_recommend(m.model, 5000, 5, cold_start => true) WHERE m.name = 'base') AS score_null;
-- a user with a factor is served as always
SELECT bool_and(a.item_id = b.item_id AND a.score = b.score) AS known_user_unchanged
FROM (SELECT r.*, row_number() OVER () AS n FROM models m, dmf_recommend(m.model, 7, 10, cold_start => true) r WHERE m.name = 'base') a
JOIN (SELECT r.*, row_number() OVER () AS n FROM models m, dmf_recommend(m.model, 7, 10) r WHERE m.name = 'base') b USING (n);

-- ---- dmf_recommend_users: the users with the highest prediction ----
CREATE TEMP TABLE target_got AS
SELECT i AS item_id, r.user_id, r.score, r.rank, e AS exclude_rated
FROM models m, generate_series(5, 200, 15) i, (VALUES (true), (false)) x(e),
     LATERAL dmf_recommend_users(m.model, i, 6, e) WITH ORDINALITY AS r(user_id, score, rank)
WHERE m.name = 'base';
SELECT count(*) AS rows,
       count(*) FILTER (WHERE g.user_id = w.user_id AND g.score = w.score) AS same
FROM target_got g
JOIN (SELECT * FROM (
        SELECT i AS item_id, u.user_id, dmf_predict(m.model, u.user_id, i) AS score, e AS exclude_rated,
               row_number() OVER (PARTITION BY i, e ORDER BY dmf_predict(m.model, u.user_id, i) DESC, u.user_id) AS rank
        FROM models m, generate_series(5, 200, 15) i, (VALUES (true), (false)) x(e), user_f u
        WHERE m.name = 'base'
          AND NOT (e AND EXISTS (SELECT 1 FROM ratings_train t WHERE t.user_id = u.user_id AND t.item_id = i))) s
      WHERE rank <= 6) w USING (item_id, exclude_rated, rank);

-- ---- dmf_explain: leave-one-out influence, checked with the aggregate ----
-- prediction of item 50 for user 12 from the user's training row without
-- one item (0: none), through the branch and fold-in (dmf_user_factor)
CREATE TEMP TABLE loo AS
SELECT o.left_out, dmf_score(m.model,
         (SELECT dmf_user_factor(m.model, t.item_id, t.rating) FROM ratings_train t
          WHERE t.user_id = 12 AND t.item_id <> o.left_out),
         dmf_item_factor(m.model, 50)) AS p
FROM models m, (SELECT 0 AS left_out UNION ALL SELECT item_id FROM ratings_train WHERE user_id = 12) o
WHERE m.name = 'base';
SELECT count(*) AS rows,
       count(*) FILTER (WHERE e.item_id = w.item_id AND e.rating = w.rating
                          AND abs(e.influence - w.influence) < 1e-12) AS same
FROM (SELECT e.*, row_number() OVER () AS rank
      FROM models m, dmf_explain(m.model, 12, 50, 5, 'ratings_train') e WHERE m.name = 'base') e
JOIN (SELECT t.item_id, t.rating::float8 AS rating, full_row.p - l.p AS influence,
             row_number() OVER (ORDER BY full_row.p - l.p DESC, t.item_id) AS rank
      FROM loo l JOIN ratings_train t ON t.user_id = 12 AND t.item_id = l.left_out,
           (SELECT p FROM loo WHERE left_out = 0) full_row) w USING (rank);
-- the influences add up to how the user's ratings move the prediction: a
-- rating that pulls it up has a positive influence, one that pulls it down
-- a negative one; every rating of the user is listed with k large enough
SELECT count(*) = (SELECT count(*) FROM ratings_train WHERE user_id = 12) AS every_rating,
       count(*) FILTER (WHERE influence > 0) > 0 AS some_support,
       bool_and(influence IS NOT NULL) AS all_have_influence
FROM models m, dmf_explain(m.model, 12, 50, 1000, 'ratings_train') WHERE m.name = 'base';
-- an implicit model explains from the interactions it stores, the same as
-- from the relation
SELECT count(*) AS rows, bool_and(a.item_id = b.item_id AND a.influence = b.influence AND a.rating = 1) AS same
FROM (SELECT e.*, row_number() OVER () AS n FROM implicit_models m, dmf_explain(m.model, 9, 21, 4) e WHERE m.name = 'clicks') a
JOIN (SELECT e.*, row_number() OVER () AS n FROM implicit_models m,
             dmf_explain(m.model, 9, 21, 4, 'clicks_train', rating_column => NULL) e WHERE m.name = 'clicks') b USING (n);
-- weights do not change an interaction: it enters the branch as 1
CREATE TEMP TABLE clicks_weighted AS SELECT user_id, item_id, 1 + item_id % 3 AS w FROM clicks_train;
SELECT bool_and(a.item_id = b.item_id AND a.influence = b.influence AND b.rating = 1) AS weights_ignored
FROM (SELECT e.*, row_number() OVER () AS n FROM implicit_models m, dmf_explain(m.model, 9, 21, 4) e WHERE m.name = 'clicks') a
JOIN (SELECT e.*, row_number() OVER () AS n FROM implicit_models m,
             dmf_explain(m.model, 9, 21, 4, 'clicks_weighted', rating_column => 'w') e WHERE m.name = 'clicks') b USING (n);
-- an item without a factor: nothing to explain
SELECT count(*) AS unknown_item FROM models m, dmf_explain(m.model, 12, 99999, 3, 'ratings_train') WHERE m.name = 'base';

-- ---- dmf_evaluate_ranking with a rating threshold: the same as a view ----
CREATE TEMP VIEW liked_test AS SELECT * FROM ratings_test WHERE rating >= 4;
SELECT a.users = b.users AND a.hit_rate = b.hit_rate AND a.ndcg = b.ndcg AND a.map = b.map
       AND a.recall = b.recall AND a."precision" = b."precision" AS threshold_is_view, a.users > 0 AS some_users
FROM models m, dmf_evaluate_ranking(m.model, 'ratings_test', rating_column => 'rating', min_rating => 4) a,
     dmf_evaluate_ranking(m.model, 'liked_test') b
WHERE m.name = 'base';

-- ---- errors ----
SELECT r.* FROM models m, dmf_similar_items(m.model, 3, -1) r WHERE m.name = 'base';
SELECT r.* FROM models m, dmf_recommend_users(m.model, 3, -2) r WHERE m.name = 'base';
SELECT r.* FROM models m, dmf_popular_items(m.model, -1) r WHERE m.name = 'base';
SELECT r.* FROM models m, dmf_recommend(m.model, 1, 5, candidates => '{{1,2},{3,4}}') r WHERE m.name = 'base';
SELECT r.* FROM models m, dmf_explain(m.model, 12, 50) r WHERE m.name = 'base';
SELECT r.* FROM models m, dmf_explain(m.model, 12, 50, 3, 'ratings_train', rating_column => 'nope') r WHERE m.name = 'base';
CREATE TEMP TABLE twice AS
SELECT * FROM ratings_train WHERE user_id = 12
UNION ALL SELECT * FROM ratings_train WHERE user_id = 12 AND item_id = (SELECT max(item_id) FROM ratings_train WHERE user_id = 12);
SELECT r.* FROM models m, dmf_explain(m.model, 12, 50, 3, 'twice') r WHERE m.name = 'base';
CREATE TEMP TABLE off_scale AS SELECT user_id, item_id, rating * 3 AS rating FROM ratings_train WHERE user_id = 12;
SELECT r.* FROM models m, dmf_explain(m.model, 12, 50, 3, 'off_scale') r WHERE m.name = 'base';
SELECT r.* FROM models m, dmf_evaluate_ranking(m.model, 'ratings_test', min_rating => 4) r WHERE m.name = 'base';
SELECT r.* FROM models m, dmf_evaluate_ranking(m.model, 'ratings_test', rating_column => 'rating') r WHERE m.name = 'base';
SELECT r.* FROM models m, dmf_evaluate_ranking(m.model, 'ratings_test', rating_column => 'rating', min_rating => 'NaN') r WHERE m.name = 'base';
