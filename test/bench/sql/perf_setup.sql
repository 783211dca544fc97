-- perf.sh's schema: data, models, what was measured, helpers. Everything lives in schema
-- dmf_perf (dropped and recreated here), apart from bench.sh's dmf_bench.
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS dmf_perf CASCADE;
CREATE SCHEMA dmf_perf;

-- staging table for \copy (the timestamp is read and ignored)
CREATE TABLE dmf_perf.raw (user_id bigint, item_id bigint, rating float8, ts bigint);
CREATE TABLE dmf_perf.ratings (user_id bigint NOT NULL, item_id bigint NOT NULL, rating float8 NOT NULL);
CREATE TABLE dmf_perf.models (name text PRIMARY KEY, model bytea);
-- out of line and uncompressed, as the README advises: a first prediction reads only what it needs
ALTER TABLE dmf_perf.models ALTER model SET STORAGE EXTERNAL;

-- one row per dmf_train call: wall clock, peak memory of the backend, dmf_info, or the error
CREATE TABLE dmf_perf.runs (
    name text PRIMARY KEY, relation text, options jsonb,
    wall_seconds float8, vmhwm_kb bigint, info jsonb, error text
);

-- every figure of the report (section = the numbered measurement), and notes under them
CREATE TABLE dmf_perf.results (
    ord serial, section int, key text, value float8, unit text, what text
);
CREATE TABLE dmf_perf.notes (ord serial, section int, text text);

-- query timings: rep 0 is the first run in its session (warm-up, also reported)
CREATE TABLE dmf_perf.timings (label text, rep int, seconds float8);

-- floating-point work of one epoch, by component (perf_flops.sql)
CREATE TABLE dmf_perf.flops (run text, component text, flops float8, what text);
-- cblas_sgemm at the dense shapes of an epoch (sgemm_bench.c); variant: 'server' runs
-- the kernels the server's OpenBLAS picks, 'forced' a core type named in the report
CREATE TABLE dmf_perf.sgemm (
    variant text, label text, threads int, transa text, transb text,
    m int, n int, k int, calls float8, seconds_per_call float8, gflops float8
);

CREATE FUNCTION dmf_perf.fig(p_section int, p_key text, p_value float8, p_unit text, p_what text)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO dmf_perf.results (section, key, value, unit, what)
    VALUES (p_section, p_key, p_value, p_unit, p_what)
$$;

CREATE FUNCTION dmf_perf.note(p_section int, p_text text) RETURNS void LANGUAGE sql AS $$
    INSERT INTO dmf_perf.notes (section, text) VALUES (p_section, p_text)
$$;

-- median of the timed runs (rep >= 1) of a label; first: its rep 0
CREATE FUNCTION dmf_perf.median(p_label text) RETURNS float8 LANGUAGE sql STABLE AS $$
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)
    FROM dmf_perf.timings WHERE label = p_label AND rep >= 1
$$;
CREATE FUNCTION dmf_perf.first(p_label text) RETURNS float8 LANGUAGE sql STABLE AS $$
    SELECT seconds FROM dmf_perf.timings WHERE label = p_label AND rep = 0
$$;
CREATE FUNCTION dmf_perf.reps(p_label text) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM dmf_perf.timings WHERE label = p_label AND rep >= 1
$$;

-- Peak resident memory of this backend (kB), NULL when /proc is not readable
-- from SQL (pg_read_file needs superuser or pg_read_server_files).
CREATE FUNCTION dmf_perf.vmhwm_kb() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RETURN (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmHWM:\s+(\d+)'))[1]::bigint;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;

-- a number from a jsonb object if it is there and numeric
CREATE FUNCTION dmf_perf.jnum(j jsonb, k text) RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN j ? k AND jsonb_typeof(j -> k) = 'number' THEN (j ->> k)::float8 END
$$;

-- four significant digits, integers grouped by thousands; '-' for NULL
CREATE FUNCTION dmf_perf.fmt(v float8) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN v IS NULL THEN '-'
        WHEN v = 'NaN' THEN 'NaN'
        WHEN v = 0 THEN '0'
        WHEN v = round(v) OR abs(v) >= 1000 THEN to_char(round(v::numeric), 'FM999,999,999,999,990')
        ELSE round(v::numeric, greatest(0, 3 - floor(log(abs(v)::numeric))::int))::text
    END
$$;
