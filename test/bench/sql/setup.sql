-- Benchmark schema: tables for the data, the results, and helper functions.
-- Run once per benchmark, before loading. Everything lives in schema dmf_bench,
-- which is dropped and recreated here.
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS dmf_bench CASCADE;
CREATE SCHEMA dmf_bench;

-- staging table for \copy (the timestamp is read and ignored)
CREATE TABLE dmf_bench.raw (user_id bigint, item_id bigint, rating float8, ts bigint);

-- the ratings used by every split (filled by bench.sh)
CREATE TABLE dmf_bench.ratings (user_id bigint NOT NULL, item_id bigint NOT NULL, rating float8 NOT NULL);

-- rating levels of the data set, for "rounded to the nearest level"
CREATE TABLE dmf_bench.levels (level float8 PRIMARY KEY);
CREATE TABLE dmf_bench.meta (key text PRIMARY KEY, value text);

-- baseline parameters (run = e.g. 'p1_s1', 'p2_s1')
CREATE TABLE dmf_bench.bias_mu (run text PRIMARY KEY, mu float8);
CREATE TABLE dmf_bench.bias_user (run text, user_id bigint, b float8, n bigint, PRIMARY KEY (run, user_id));
CREATE TABLE dmf_bench.bias_item (run text, item_id bigint, b float8, n bigint, PRIMARY KEY (run, item_id));

-- trained models and what was measured around them
CREATE TABLE dmf_bench.models (name text PRIMARY KEY, model bytea);
CREATE TABLE dmf_bench.runs (
    name text PRIMARY KEY,      -- model name, e.g. p1_s1, p1d_s1, p2_s1
    seed int, protocol text, method text,
    train_seconds float8,       -- wall clock around dmf_train
    train_vmhwm_kb bigint,      -- peak RSS of the backend that trained
    refresh_seconds float8,     -- P2: wall clock around dmf_refresh
    refresh_vmhwm_kb bigint,
    predict_rows bigint,
    predict_seconds float8,     -- SELECT sum(dmf_predict(...)) over the test split
    info jsonb,                 -- dmf_info(model)
    refresh_info jsonb          -- P2: dmf_info of the refreshed model
);
CREATE TABLE dmf_bench.history (name text, epoch int, train_loss float8, train_rmse float8, validation_rmse float8, seconds float8);
-- the MF yardstick's runs (test/bench/mf_baseline.c)
CREATE TABLE dmf_bench.mf_runs (seed int, protocol text, epochs int, seconds float8, validation_rmse float8);

-- quality figures, one row per seed x protocol x method x area
CREATE TABLE dmf_bench.metrics (
    seed int, protocol text, method text, area text,
    n bigint,                   -- test ratings
    covered bigint,             -- test ratings with a non-NULL prediction
    rmse float8, mae float8,    -- over the covered ratings
    rmse_round float8, mae_round float8,  -- prediction rounded to the nearest rating level
    PRIMARY KEY (seed, protocol, method, area)
);

-- Nearest rating level. Integer levels with step 1 (MovieLens): round + clamp.
-- Otherwise the nearest level of dmf_bench.levels (ties go up).
CREATE FUNCTION dmf_bench.round_level(p float8) RETURNS float8
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p IS NULL THEN NULL
        WHEN (SELECT value FROM dmf_bench.meta WHERE key = 'integer_levels') = 'true'
        THEN greatest((SELECT min(level) FROM dmf_bench.levels),
                      least((SELECT max(level) FROM dmf_bench.levels), round(p)))
        ELSE (SELECT level FROM dmf_bench.levels ORDER BY abs(level - p), level DESC LIMIT 1)
    END
$$;

-- (inlined by the planner: pass the bounds, e.g. from dmf_bench.levels)
CREATE FUNCTION dmf_bench.clamp(p float8, lo float8, hi float8) RETURNS float8
LANGUAGE sql IMMUTABLE AS $$ SELECT greatest(lo, least(hi, p)) $$;

-- Score a query that returns (area text, rating float8, p float8) and record it.
-- by_area: also record an 'all' row over every area (P2).
CREATE FUNCTION dmf_bench.score(p_seed int, p_protocol text, p_method text, p_query text, by_area bool DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_int bool := (SELECT value FROM dmf_bench.meta WHERE key = 'integer_levels') = 'true';
    v_min float8 := (SELECT min(level) FROM dmf_bench.levels);
    v_max float8 := (SELECT max(level) FROM dmf_bench.levels);
    v_round text;
BEGIN
    -- inline the common case, the function call costs more than the query
    IF v_int THEN
        v_round := format('greatest(%s::float8, least(%s::float8, round(p)))', v_min, v_max);
    ELSE
        v_round := 'dmf_bench.round_level(p)';
    END IF;
    EXECUTE format($q$
        INSERT INTO dmf_bench.metrics (seed, protocol, method, area, n, covered, rmse, mae, rmse_round, mae_round)
        SELECT %1$s, %2$L, %3$L, coalesce(area, 'all'), count(*), count(p),
               sqrt(avg((p - rating) ^ 2)), avg(abs(p - rating)),
               sqrt(avg((pr - rating) ^ 2)), avg(abs(pr - rating))
        FROM (SELECT area, rating, p, %4$s AS pr FROM (%5$s) q0) q
        GROUP BY %6$s
    $q$, p_seed, p_protocol, p_method, v_round, p_query,
       CASE WHEN by_area THEN 'GROUPING SETS ((area), ())' ELSE 'area' END);
END
$$;

-- Bias model r = mu + b_u + b_i, fitted by alternating regularized means:
--   b_i = sum(r - mu - b_u) / (lambda_i + n_i),  b_u = sum(r - mu - b_i) / (lambda_u + n_u)
-- starting from b_u = 0, `rounds` times (b_i first).
CREATE FUNCTION dmf_bench.fit_bias(p_run text, p_train regclass, p_lambda_u float8, p_lambda_i float8, p_rounds int)
RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    v_mu float8;
BEGIN
    EXECUTE format('SELECT avg(rating) FROM %s', p_train) INTO v_mu;
    INSERT INTO dmf_bench.bias_mu VALUES (p_run, v_mu);
    DROP TABLE IF EXISTS pg_temp.bias_r, pg_temp.bias_u, pg_temp.bias_i;
    EXECUTE format('CREATE TEMP TABLE bias_r AS SELECT user_id, item_id, rating - %s AS r FROM %s', v_mu, p_train);
    CREATE TEMP TABLE bias_u AS SELECT user_id, 0::float8 AS b, count(*) AS n FROM bias_r GROUP BY user_id;
    CREATE TEMP TABLE bias_i AS SELECT item_id, 0::float8 AS b, count(*) AS n FROM bias_r GROUP BY item_id;
    ANALYZE bias_r; ANALYZE bias_u; ANALYZE bias_i;
    FOR k IN 1 .. p_rounds LOOP
        UPDATE bias_i SET b = s.b FROM (
            SELECT r.item_id, sum(r.r - u.b) / (p_lambda_i + count(*)) AS b
            FROM bias_r r JOIN bias_u u USING (user_id) GROUP BY r.item_id) s
        WHERE bias_i.item_id = s.item_id;
        UPDATE bias_u SET b = s.b FROM (
            SELECT r.user_id, sum(r.r - i.b) / (p_lambda_u + count(*)) AS b
            FROM bias_r r JOIN bias_i i USING (item_id) GROUP BY r.user_id) s
        WHERE bias_u.user_id = s.user_id;
    END LOOP;
    INSERT INTO dmf_bench.bias_user SELECT p_run, user_id, b, n FROM bias_u;
    INSERT INTO dmf_bench.bias_item SELECT p_run, item_id, b, n FROM bias_i;
    DROP TABLE bias_r, bias_u, bias_i;
    RETURN v_mu;
END
$$;

-- Peak resident memory of this backend (kB), NULL when /proc is not readable
-- from SQL (pg_read_file needs superuser or pg_read_server_files).
CREATE FUNCTION dmf_bench.vmhwm_kb() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RETURN (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmHWM:\s+(\d+)'))[1]::bigint;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;

-- Record dmf_info of a model (and its per-epoch history when it has one).
CREATE FUNCTION dmf_bench.record_info(p_name text, p_info jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE dmf_bench.runs SET info = p_info WHERE name = p_name;
    IF p_info ? 'history' AND jsonb_typeof(p_info -> 'history') = 'array' THEN
        DELETE FROM dmf_bench.history WHERE name = p_name;
        INSERT INTO dmf_bench.history
        SELECT p_name,
               CASE WHEN jsonb_typeof(h -> 'epoch') = 'number' THEN (h ->> 'epoch')::numeric::int END,
               dmf_bench.jnum(h, 'train_loss'), dmf_bench.jnum(h, 'train_rmse'),
               dmf_bench.jnum(h, 'validation_rmse'), dmf_bench.jnum(h, 'seconds')
        FROM jsonb_array_elements(p_info -> 'history') h
        WHERE jsonb_typeof(h) = 'object';
    END IF;
END
$$;

-- a number from a jsonb object if it is there and numeric
CREATE FUNCTION dmf_bench.jnum(j jsonb, k text) RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN j ? k AND jsonb_typeof(j -> k) = 'number' THEN (j ->> k)::float8 END
$$;

-- "mean ± std" (std over seeds; just the mean for one seed; '-' when there is nothing)
CREATE FUNCTION dmf_bench.fmt(m float8, s float8, digits int DEFAULT 4) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN m IS NULL THEN '-'
                WHEN s IS NULL THEN round(m::numeric, digits)::text
                ELSE round(m::numeric, digits)::text || ' ± ' || round(s::numeric, digits)::text END
$$;

-- metrics aggregated over seeds
CREATE VIEW dmf_bench.summary AS
SELECT protocol, method, area, count(*) AS seeds,
       avg(rmse) AS rmse, stddev_samp(rmse) AS rmse_sd, avg(mae) AS mae, stddev_samp(mae) AS mae_sd,
       avg(rmse_round) AS rmse_round, stddev_samp(rmse_round) AS rmse_round_sd,
       avg(mae_round) AS mae_round, stddev_samp(mae_round) AS mae_round_sd,
       sum(covered) AS covered, sum(n) AS n
FROM dmf_bench.metrics GROUP BY protocol, method, area;

-- one row per training run with the figures of dmf_info that exist
CREATE VIEW dmf_bench.run_figures AS
SELECT name, seed, protocol, method, train_seconds,
       dmf_bench.jnum(info, 'epochs_run') AS epochs_run,
       dmf_bench.jnum(info, 'best_epoch') AS best_epoch,
       dmf_bench.jnum(info, 'best_validation_rmse') AS best_validation_rmse,
       dmf_bench.jnum(info, 'training_seconds') AS info_training_seconds,
       coalesce(dmf_bench.jnum(info, 'seconds_per_epoch'),
                dmf_bench.jnum(info, 'training_seconds') / nullif(dmf_bench.jnum(info, 'epochs_run'), 0),
                train_seconds / nullif(dmf_bench.jnum(info, 'epochs_run'), 0)) AS seconds_per_epoch,
       coalesce(info ->> 'threads', (info -> 'options') ->> 'threads') AS threads,
       predict_rows, predict_seconds, predict_rows / nullif(predict_seconds, 0) AS predictions_per_second,
       refresh_seconds, train_vmhwm_kb, refresh_vmhwm_kb,
       CASE WHEN info IS NULL THEN NULL ELSE info - 'history' END AS info,
       CASE WHEN refresh_info IS NULL THEN NULL ELSE refresh_info - 'history' END AS refresh_info
FROM dmf_bench.runs;
