-- Time the scoring query over the whole test split, then score the model.
-- psql variables: name (run), model (model name to predict with), seed, protocol, method,
-- test_tbl, by_area (true for P2), discrete (true: also score dmf_predict_discrete as dmfd_method).
SET client_min_messages = warning;
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) AS n, sum(dmf_predict(m.model, t.user_id, t.item_id)) AS s
FROM :test_tbl t, dmf_bench.models m WHERE m.name = :'model' \gset
SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS secs \gset
\o /dev/null
UPDATE dmf_bench.runs SET predict_rows = :n, predict_seconds = :secs WHERE name = :'name';
SELECT dmf_bench.score(:seed, :'protocol', :'method',
    format('SELECT %s AS area, t.rating, dmf_predict(m.model, t.user_id, t.item_id) AS p
            FROM %s t, dmf_bench.models m WHERE m.name = %L',
           CASE WHEN :by_area THEN 't.area' ELSE '''all''::text' END, :'test_tbl', :'model'), :by_area);
\if :discrete
SELECT dmf_bench.score(:seed, :'protocol', :'dmfd_method',
    format('SELECT %s AS area, t.rating, dmf_predict_discrete(m.model, t.user_id, t.item_id) AS p
            FROM %s t, dmf_bench.models m WHERE m.name = %L',
           CASE WHEN :by_area THEN 't.area' ELSE '''all''::text' END, :'test_tbl', :'model'), :by_area);
\endif
\o
SELECT format('%s seed %s: %s', :'protocol', :seed, string_agg(
           format('%s %s RMSE %s MAE %s (%s/%s predicted)', method, area, round(rmse::numeric, 4),
                  round(mae::numeric, 4), covered, n), '; ' ORDER BY method, area))
FROM dmf_bench.metrics WHERE seed = :seed AND protocol = :'protocol' AND method IN (:'method', :'dmfd_method');
