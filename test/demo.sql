-- dmf demo: train a Deep Matrix Factorization model on synthetic ratings and
-- look at what it predicts. Run with: psql -X -v ON_ERROR_STOP=1 -f test/demo.sql
--
-- The ratings come from a known low-rank structure (3 hidden taste factors
-- plus user and item biases), so the predictions can be compared with the
-- truth. Everything is derived from hashtext(), sin() and cos(): the same
-- data on every run and every machine, no random().

\set QUIET on
\pset null '(null)'
SET client_min_messages = warning;

\echo
\echo '== Synthetic ratings: 500 users x 300 items, about 20% rated'

DROP SCHEMA IF EXISTS dmf_demo CASCADE;
CREATE SCHEMA dmf_demo;

-- A value in [0, 1) fixed by a text key: our deterministic "random" source.
CREATE FUNCTION dmf_demo.u01(key text) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (hashtext(key)::float8 + 2147483648) / 4294967296 $$;

-- Hidden taste of each user: 3 factors in [-1, 1] and a small bias.
CREATE TABLE dmf_demo.user_taste AS
SELECT u AS user_id,
       cos(2 * pi() * dmf_demo.u01('user ' || u || ' f1')) AS f1,
       cos(2 * pi() * dmf_demo.u01('user ' || u || ' f2')) AS f2,
       cos(2 * pi() * dmf_demo.u01('user ' || u || ' f3')) AS f3,
       0.3 * sin(2 * pi() * dmf_demo.u01('user ' || u || ' bias')) AS bias
FROM generate_series(1, 500) AS u;

-- Hidden profile of each item: 3 factors, a quality bias and a popularity
-- that decides how often it gets rated (5% to 35%, 20% on average).
CREATE TABLE dmf_demo.item_profile AS
SELECT i AS item_id,
       sin(2 * pi() * dmf_demo.u01('item ' || i || ' f1')) AS f1,
       sin(2 * pi() * dmf_demo.u01('item ' || i || ' f2')) AS f2,
       sin(2 * pi() * dmf_demo.u01('item ' || i || ' f3')) AS f3,
       0.5 * sin(2 * pi() * dmf_demo.u01('item ' || i || ' bias')) AS bias,
       0.05 + 0.3 * dmf_demo.u01('item ' || i || ' popularity') AS popularity
FROM generate_series(1, 300) AS i;

-- The noise-free score of every (user, item) pair, rated or not.
CREATE VIEW dmf_demo.truth AS
SELECT u.user_id, i.item_id,
       3.5 + u.bias + i.bias + 1.2 * (u.f1 * i.f1 + u.f2 * i.f2 + u.f3 * i.f3) AS score
FROM dmf_demo.user_taste u CROSS JOIN dmf_demo.item_profile i;

-- Observed ratings: a popularity-weighted sample of pairs, score plus a
-- little noise, rounded and clamped to 1..5 stars.
CREATE TABLE dmf_demo.ratings AS
SELECT t.user_id, t.item_id,
       least(5, greatest(1, round(t.score
             + 0.8 * (dmf_demo.u01('noise ' || t.user_id || ':' || t.item_id) - 0.5))))::smallint AS rating
FROM dmf_demo.truth t
JOIN dmf_demo.item_profile i USING (item_id)
WHERE dmf_demo.u01('rated ' || t.user_id || ':' || t.item_id) < i.popularity
ORDER BY t.user_id, t.item_id;
ALTER TABLE dmf_demo.ratings ADD PRIMARY KEY (user_id, item_id);
ANALYZE dmf_demo.ratings;

SELECT count(*) AS ratings,
       count(DISTINCT user_id) AS users,
       count(DISTINCT item_id) AS items,
       round(100.0 * count(*) / (500 * 300), 1) AS "density %",
       round(avg(rating), 2) AS "mean rating"
FROM dmf_demo.ratings;

\echo 'How the stars are spread:'
SELECT rating AS stars, count(*) AS ratings,
       repeat('#', (count(*) / 250)::int) AS histogram
FROM dmf_demo.ratings
GROUP BY rating
ORDER BY rating;

\echo
\echo '== Training (20 epochs, seed 1)'

CREATE EXTENSION IF NOT EXISTS dmf;
CREATE TABLE dmf_demo.models(name text PRIMARY KEY, model bytea);

\timing on
INSERT INTO dmf_demo.models
SELECT 'demo', dmf_train('dmf_demo.ratings', options => '{"epochs": 20, "seed": 1}');
\timing off

\echo
\echo '== The model'
-- Unaligned, without headers: the JSON reads as plain JSON.
\pset format unaligned
\pset tuples_only on
SELECT jsonb_pretty(dmf_info(model)) FROM dmf_demo.models WHERE name = 'demo';
\pset format aligned
\pset tuples_only off

\echo
\echo '== Predictions for 10 pairs the users have not rated'
\echo '   (hidden truth = the generator''s noise-free score, never shown to the model)'
WITH picked AS (
    -- Users 1, 51, 101, ...; for each one an unrated item chosen by hash.
    SELECT DISTINCT ON (t.user_id) t.user_id, t.item_id, t.score
    FROM dmf_demo.truth t
    WHERE t.user_id % 50 = 1
      AND NOT EXISTS (SELECT 1 FROM dmf_demo.ratings r
                      WHERE r.user_id = t.user_id AND r.item_id = t.item_id)
    ORDER BY t.user_id, dmf_demo.u01('pick ' || t.user_id || ':' || t.item_id)
)
SELECT p.user_id, p.item_id,
       (SELECT round(avg(r.rating), 2) FROM dmf_demo.ratings r
        WHERE r.user_id = p.user_id) AS "user's mean",
       round(dmf_predict(m.model, p.user_id, p.item_id)::numeric, 2) AS predicted,
       round(least(5, greatest(1, p.score))::numeric, 2) AS "hidden truth"
FROM picked p, dmf_demo.models m
WHERE m.name = 'demo'
ORDER BY p.user_id;

\echo
\echo '== Top 5 recommendations for user 42 (dmf_recommend leaves out what it rated)'
SELECT r.item_id, round(r.score::numeric, 2) AS predicted,
       round(least(5, greatest(1, t.score))::numeric, 2) AS "hidden truth"
FROM dmf_demo.models m,
     LATERAL dmf_recommend(m.model, 42, 5) r
     JOIN dmf_demo.truth t ON t.user_id = 42 AND t.item_id = r.item_id
WHERE m.name = 'demo'
ORDER BY r.score DESC, r.item_id;

\echo
\echo '== Fit on the training ratings (dmf_evaluate), against the global mean'
SELECT e.n AS ratings, round(e.rmse::numeric, 3) AS "dmf RMSE",
       round(e.mae::numeric, 3) AS "dmf MAE",
       round((SELECT sqrt(avg((g.mean - r.rating) ^ 2))
              FROM dmf_demo.ratings r, (SELECT avg(rating)::float8 AS mean FROM dmf_demo.ratings) g)::numeric, 3)
           AS "global mean RMSE"
FROM dmf_demo.models m, LATERAL dmf_evaluate(m.model, 'dmf_demo.ratings') e
WHERE m.name = 'demo';

\echo 'Unknown ids give NULL:'
SELECT dmf_predict(model, 999999, 1) AS "dmf_predict(model, 999999, 1)"
FROM dmf_demo.models WHERE name = 'demo';

\echo
\echo 'The data and the model stay in schema dmf_demo (DROP SCHEMA dmf_demo CASCADE to remove).'
