-- Attacks on dmf from another role's objects, and inputs that used to give
-- a silently wrong model.  Each block here failed before its fix.

-- 1. Types in pg_temp never reach the queries dmf builds.  An unqualified
-- type name is looked up in pg_temp first, so a session's own domain named
-- int8 or float8 used to stand in for the casts of the ratings reader.

-- a) In one's own session: a pg_temp.int8 that is text made the reader take
-- text pointers for ids (dmf_recommend then returned heap addresses).
CREATE DOMAIN pg_temp.int8 AS text;
CREATE DOMAIN pg_temp.float8 AS text;
INSERT INTO models SELECT 'temp_types', dmf_train('ratings', options => test_options('{"epochs": 2}'));
SELECT dmf_info(model) -> 'users' AS users, dmf_info(model) -> 'items' AS items
FROM models WHERE name = 'temp_types';
SELECT min(item_id) >= 1 AND max(item_id) <= 200 AS item_ids_are_real, count(*) AS recommended
FROM models, dmf_recommend(model, 1, 5) WHERE name = 'temp_types';
DROP DOMAIN pg_temp.int8;
DROP DOMAIN pg_temp.float8;

-- b) Across roles: bob's pg_temp.float8 domain has a CHECK that runs bob's
-- code, which copies a table only alice can read.  Bob calls alice's
-- SECURITY DEFINER function that trains, refreshes and evaluates on her
-- table: his code must not run as alice.
CREATE ROLE regress_dmf_alice;
CREATE ROLE regress_dmf_bob;
CREATE SCHEMA alice AUTHORIZATION regress_dmf_alice;
GRANT USAGE ON SCHEMA alice TO regress_dmf_bob;
CREATE TABLE alice.secret AS SELECT 'the secret' AS s;
CREATE TABLE alice.ratings AS SELECT * FROM ratings;
ALTER TABLE alice.secret OWNER TO regress_dmf_alice;
ALTER TABLE alice.ratings OWNER TO regress_dmf_alice;
CREATE TABLE alice.val AS SELECT * FROM ratings_test;
ALTER TABLE alice.val OWNER TO regress_dmf_alice;
CREATE TABLE bob_loot (s text);
ALTER TABLE bob_loot OWNER TO regress_dmf_bob;
-- the loot table takes rows from anyone: the attack must fail before it
GRANT INSERT ON bob_loot TO PUBLIC;

SET ROLE regress_dmf_alice;
-- the option "validation" names a relation too: unqualified, it would find
-- a temporary view of the caller's first
CREATE FUNCTION alice.train_validated() RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, alice AS $$
BEGIN
    PERFORM public.dmf_train('alice.ratings'::pg_catalog.regclass,
                             options => public.test_options('{"epochs": 1, "validation": "val"}'));
    RETURN 'trained';
END $$;
CREATE FUNCTION alice.train_refresh_evaluate() RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    m bytea := public.dmf_train('alice.ratings'::pg_catalog.regclass,
                                options => public.test_options('{"epochs": 1}'));
    r float8;
BEGIN
    m := public.dmf_refresh(m, 'alice.ratings'::pg_catalog.regclass);
    SELECT e.rmse INTO r FROM public.dmf_evaluate(m, 'alice.ratings'::pg_catalog.regclass) e;
    RETURN CASE WHEN r IS NOT NULL THEN 'trained, refreshed and evaluated' END;
END $$;
RESET ROLE;

SET ROLE regress_dmf_bob;
SELECT count(*) FROM alice.secret;      -- bob cannot read it himself
CREATE FUNCTION pg_temp.steal(float8) RETURNS bool LANGUAGE sql AS $$
    INSERT INTO public.bob_loot SELECT s FROM alice.secret;
    SELECT true $$;
CREATE FUNCTION pg_temp.steal_id(bigint) RETURNS bool LANGUAGE sql AS $$
    INSERT INTO public.bob_loot SELECT s FROM alice.secret;
    SELECT true $$;
CREATE DOMAIN pg_temp.float8 AS pg_catalog.float8 CHECK (pg_temp.steal(VALUE));
CREATE DOMAIN pg_temp.int8 AS pg_catalog.int8 CHECK (pg_temp.steal_id(VALUE));
SELECT alice.train_refresh_evaluate();
SELECT count(*) AS rows_stolen FROM bob_loot;
CREATE FUNCTION pg_temp.steal_row() RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO public.bob_loot SELECT s FROM alice.secret;
    SELECT 1::bigint $$;
CREATE TEMP VIEW val AS SELECT pg_temp.steal_row() AS user_id, 1::bigint AS item_id, 3.0::float8 AS rating;
GRANT SELECT ON val TO PUBLIC;
SELECT alice.train_validated();
SELECT count(*) AS rows_stolen FROM bob_loot;
DROP VIEW val;
DROP FUNCTION pg_temp.steal_row();
DROP DOMAIN pg_temp.float8;
DROP DOMAIN pg_temp.int8;
DROP FUNCTION pg_temp.steal(float8);
DROP FUNCTION pg_temp.steal_id(bigint);
RESET ROLE;
DROP TABLE bob_loot;
DROP SCHEMA alice CASCADE;
-- one's own temporary validation table works when named as one
CREATE TEMP TABLE my_validation AS SELECT * FROM ratings_test;
SELECT dmf_train('ratings_train', options => test_options('{"epochs": 1, "validation": "my_validation"}'));
SELECT dmf_info(dmf_train('ratings_train', options => test_options('{"epochs": 1, "validation": "pg_temp.my_validation"}')))
       -> 'validation_rows' AS validation_rows;
DROP ROLE regress_dmf_alice;
DROP ROLE regress_dmf_bob;

-- 2. Ratings are scaled in double precision.  Shifted by 1e8 they are the
-- same ratings: the same model and the same errors (they were cast to
-- float32 first, and 100000004 cannot be told from 100000005 there).
CREATE TABLE ratings_shifted AS
SELECT user_id, item_id, rating + 100000000::float8 AS rating FROM ratings_train;
CREATE TABLE ratings_test_shifted AS
SELECT user_id, item_id, rating + 100000000::float8 AS rating FROM ratings_test;
INSERT INTO models
SELECT 'plain10', dmf_train('ratings_train', options => test_options('{"epochs": 10}'))
UNION ALL
SELECT 'shifted', dmf_train('ratings_shifted', options => test_options('{"epochs": 10}'));
SELECT dmf_info(model) -> 'rating_min' AS rating_min, dmf_info(model) -> 'rating_max' AS rating_max
FROM models WHERE name = 'shifted';
SELECT abs(s.rmse - p.rmse) < 1e-6 AS same_test_rmse, round(p.rmse::numeric, 4) AS rmse,
       abs(s.rmse_discrete - p.rmse_discrete) < 1e-6 AS same_discrete_rmse
FROM (SELECT e.* FROM models, dmf_evaluate(model, 'ratings_test_shifted') e WHERE name = 'shifted') s,
     (SELECT e.* FROM models, dmf_evaluate(model, 'ratings_test') e WHERE name = 'plain10') p;

-- Ratings near the smallest doubles train like any others (they gave NaN
-- metrics and a model that predicted NULL for every pair).
CREATE TABLE ratings_tiny AS
SELECT user_id, item_id, rating * 1e-300::float8 AS rating FROM ratings_train;
CREATE TABLE ratings_test_tiny AS
SELECT user_id, item_id, rating * 1e-300::float8 AS rating FROM ratings_test;
INSERT INTO models SELECT 'tiny_scale', dmf_train('ratings_tiny', options => test_options('{"epochs": 10}'));
SELECT e.covered = e.n AS all_predicted, abs(e.rmse / 1e-300 - p.rmse) < 0.01 AS rmse_as_unscaled
FROM models m, dmf_evaluate(m.model, 'ratings_test_tiny') e,
     (SELECT e.rmse FROM models, dmf_evaluate(model, 'ratings_test') e WHERE name = 'plain10') p
WHERE m.name = 'tiny_scale';

-- Errors far larger than the model's scale do not overflow (the squares of
-- errors were summed times 2^997 for this model: RMSE Infinity).
SELECT e.rmse BETWEEN 2 AND 5 AS rmse_finite, round(e.mae::numeric, 2) = round(avg_rating::numeric, 2) AS mae_is_mean_rating
FROM models m, dmf_evaluate(m.model, 'ratings_test') e,
     (SELECT avg(rating) AS avg_rating FROM ratings_test) r
WHERE m.name = 'tiny_scale';

-- A range a double cannot hold is an ERROR that names it.
CREATE TABLE ratings_huge AS
SELECT user_id, item_id, CASE WHEN rating >= 3 THEN 1.7e308 ELSE -1.7e308 END::float8 AS rating
FROM ratings_train;
SELECT dmf_train('ratings_huge', options => test_options('{"epochs": 1}'));

-- 3. Integer options are exact integers, compared without a detour
-- through double.
SELECT dmf_train('ratings', options => test_options('{"seed": 9007199254740993}'));
SELECT dmf_train('ratings', options => test_options('{"dim": 64.0000000000000001}'));
SELECT dmf_train('ratings', options => test_options('{"epochs": 1e400}'));
SELECT dmf_train('ratings', options => test_options('{"seed": 12345678901234567890.0}'));
SELECT dmf_info(dmf_train('ratings', options => test_options('{"epochs": 1, "dim": 8.0}'))) -> 'dim' AS dim;

-- 4. dmf_refresh from a relation that lacks some training users keeps
-- their factors, as dmf_info's count of users says (they lost them).
CREATE TABLE ratings_half AS SELECT * FROM ratings_train WHERE user_id <= 150;
INSERT INTO models SELECT 'half_refreshed', dmf_refresh(model, 'ratings_half')
FROM models WHERE name = 'plain10';
SELECT dmf_info(r.model) -> 'users' AS users_after, dmf_info(p.model) -> 'users' AS users_before,
       (SELECT count(dmf_predict(r.model, user_id, item_id)) FROM ratings_train) AS predictable_after,
       (SELECT count(dmf_predict(p.model, user_id, item_id)) FROM ratings_train) AS predictable_before,
       (SELECT bool_and(dmf_user_factor(r.model, user_id) = dmf_user_factor(p.model, user_id))
        FROM generate_series(151, 300) user_id) AS absent_users_kept
FROM models r, models p WHERE r.name = 'half_refreshed' AND p.name = 'plain10';
-- and what they rated: dmf_recommend still leaves it out
SELECT count(*) AS recommended, count(t.item_id) AS already_rated
FROM models m, dmf_recommend(m.model, 250, 100) r
LEFT JOIN ratings_train t ON t.user_id = 250 AND t.item_id = r.item_id
WHERE m.name = 'half_refreshed';

-- 5. A value of dmf.max_memory set before the library is loaded was
-- rejected with only a WARNING, and the training ran under the default.
\c -
SET dmf.max_memory = '0';
SELECT dmf_train('ratings', options => test_options('{"epochs": 1}'));
-- a value for one transaction lasts only that transaction
BEGIN;
SET LOCAL dmf.max_memory = '64MB';
SELECT length(dmf_train('ratings', options => test_options('{"epochs": 1}'))) > 0 AS trains_in_transaction;
COMMIT;
SELECT dmf_train('ratings', options => test_options('{"epochs": 1}'));
SET dmf.max_memory = '64MB';
SELECT length(dmf_train('ratings', options => test_options('{"epochs": 1}'))) > 0 AS trains_once_set;
\c -
SET dmf.max_memory = 'banana';
SELECT dmf_predict(model, 1, 1) IS NOT NULL AS predicts FROM models WHERE name = 'base';
SELECT dmf_train('ratings', options => test_options('{"epochs": 1}'));
SET dmf.max_memory = '1GB';
SELECT length(dmf_train('ratings', options => test_options('{"epochs": 1}'))) > 0 AS trains_once_set_again;

-- 6. dmf.max_memory holds while the rows are read: 2 million ratings under a
-- 1 MB cap are held as far as the cap allows, the rest only counted (the
-- refusal used to come after the backend had grown by 200 MB), and the hint
-- names what the whole work needs (test/t/032_memory_cap.sh runs it there).
CREATE TABLE ratings_big AS
SELECT g % 5000 AS user_id, g / 5000 AS item_id, g % 5 + 1 AS rating
FROM generate_series(0, 1999999) g;
\c -
SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1]::bigint AS peak_kb_before \gset
SET dmf.max_memory = '1MB';
SELECT dmf_train('ratings_big');
SELECT dmf_refresh(model, 'ratings_big') FROM models WHERE name = 'base';
SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1]::bigint - :peak_kb_before
       < 64 * 1024 AS peak_grew_less_than_64mb;
RESET dmf.max_memory;
DROP TABLE ratings_big;
-- a refresh counts what it builds, not only the rows: the model alone is
-- more than 1 MB here
INSERT INTO models SELECT 'wide', dmf_train('ratings', options => test_options('{"epochs": 1, "layers": [512], "dim": 64}'));
SELECT length(model) > 1024 * 1024 AS model_over_1mb FROM models WHERE name = 'wide';
SET dmf.max_memory = '1MB';
SELECT dmf_refresh(model, 'ratings') FROM models WHERE name = 'wide';
RESET dmf.max_memory;
SELECT length(dmf_refresh(model, 'ratings')) > 0 AS refreshes_under_default FROM models WHERE name = 'wide';
