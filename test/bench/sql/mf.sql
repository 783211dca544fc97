-- Scores the predictions of test/bench/mf_baseline.c, loaded into
-- dmf_bench.mf_pred, for seed :seed and protocol :protocol (psql variables;
-- :test the test table, :by_area true for P2) and records its run
-- (:summary: the program's summary line).
SET client_min_messages = warning;
\o /dev/null
SELECT dmf_bench.score(:seed, :'protocol', 'MF',
    format('SELECT %s AS area, t.rating, m.p
            FROM %s t JOIN dmf_bench.mf_pred m USING (user_id, item_id)',
           CASE WHEN :'by_area' THEN 't.area' ELSE '''all''::text' END, :'test'),
    :'by_area'::bool);
INSERT INTO dmf_bench.mf_runs (seed, protocol, epochs, seconds, validation_rmse)
SELECT :seed, :'protocol', (regexp_match(:'summary', 'epochs (\d+)'))[1]::int,
       (regexp_match(:'summary', 'seconds ([0-9.]+)'))[1]::float8,
       (regexp_match(:'summary', 'validation_rmse ([0-9.naNinf-]+)'))[1]::float8;
DROP TABLE dmf_bench.mf_pred;
\o
SELECT format('seed %s %s MF: %s', :seed, :'protocol', string_agg(
           format('%s RMSE %s', area, round(rmse::numeric, 4)), ', ' ORDER BY area))
FROM dmf_bench.metrics WHERE seed = :seed AND protocol = :'protocol' AND method = 'MF';
