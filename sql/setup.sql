-- Deterministic synthetic ratings shared by the other tests: a rank-3
-- taste model plus noise, 1..5 stars, about 30% of 300 x 200 observed.
-- No random(): the same rows on every machine.
CREATE TABLE ratings AS
WITH u AS (
    SELECT g AS user_id, sin(g * 1.3) AS a, cos(g * 0.7) AS b, sin(g * 0.31) AS c
    FROM generate_series(1, 300) g),
i AS (
    SELECT g AS item_id, cos(g * 0.9) AS a, sin(g * 1.7) AS b, cos(g * 0.23) AS c
    FROM generate_series(1, 200) g)
SELECT u.user_id, i.item_id,
       greatest(1, least(5, round(3.2 + 1.3 * (u.a * i.a + u.b * i.b + u.c * i.c)
                                  + 0.4 * sin(u.user_id * i.item_id * 0.37))))::int AS rating
FROM u, i
WHERE abs(hashtext(u.user_id || ':' || i.item_id)) % 100 < 30;

-- held-out split used by the accuracy tests: 80% train, 20% test
CREATE TABLE ratings_train AS
SELECT * FROM ratings WHERE abs(hashtext('s' || user_id || ':' || item_id)) % 10 >= 2;
CREATE TABLE ratings_test AS
SELECT * FROM ratings WHERE abs(hashtext('s' || user_id || ':' || item_id)) % 10 < 2;

SELECT count(*) AS ratings, count(DISTINCT user_id) AS users,
       count(DISTINCT item_id) AS items, min(rating), max(rating)
FROM ratings;
SELECT (SELECT count(*) FROM ratings_train) AS train, (SELECT count(*) FROM ratings_test) AS test;

-- the options every test uses: small, fast, deterministic
CREATE FUNCTION test_options(extra jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$ SELECT '{"layers": [64], "dim": 16, "epochs": 40, "batch_size": 256,
               "learning_rate": 0.003, "seed": 7, "threads": 1}'::jsonb || extra $$;

CREATE TABLE models (name text PRIMARY KEY, model bytea);
INSERT INTO models SELECT 'base', dmf_train('ratings_train', options => test_options());
