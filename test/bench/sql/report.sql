-- The markdown report (to stdout). psql variable: data_note (text under the P1/P2 titles).
SET client_min_messages = warning;
SELECT EXISTS (SELECT FROM dmf_bench.metrics WHERE protocol = 'P1') AS has_p1,
       EXISTS (SELECT FROM dmf_bench.metrics WHERE protocol = 'P2') AS has_p2,
       EXISTS (SELECT FROM dmf_bench.runs) AS has_runs,
       (SELECT string_agg(DISTINCT seed::text, ',') FROM dmf_bench.metrics) AS seed_list \gset

\if :has_p1
\echo
SELECT format('### P1: matrix completion, test split (mean ± std over seeds %s)', :'seed_list');
\echo
\echo '| model | RMSE | MAE | RMSE rounded / discrete | MAE rounded / discrete | predicted |'
\echo '|---|---|---|---|---|---|'
WITH s AS (SELECT * FROM dmf_bench.summary WHERE protocol = 'P1' AND area = 'all')
SELECT format('| %s | %s | %s | %s | %s | %s |', label, c1, c2, c3, c4, c5) FROM (
    SELECT CASE method WHEN 'global mean' THEN 1 WHEN 'bias' THEN 2 WHEN 'MF' THEN 3 ELSE 4 END AS ord,
           CASE method WHEN 'global mean' THEN 'global mean' WHEN 'bias' THEN 'mu + b_u + b_i'
                WHEN 'MF' THEN 'biased MF, SGD (rounded: round + clamp)'
                ELSE 'DMF (rounded: round + clamp)' END AS label,
           dmf_bench.fmt(rmse, rmse_sd) c1, dmf_bench.fmt(mae, mae_sd) c2,
           dmf_bench.fmt(rmse_round, rmse_round_sd) c3, dmf_bench.fmt(mae_round, mae_round_sd) c4,
           round(100.0 * covered / n, 2) || '%' c5
    FROM s WHERE method IN ('global mean', 'bias', 'MF', 'DMF')
    UNION ALL
    SELECT 5, 'DMF-D (continuous / dmf_predict_discrete)',
           dmf_bench.fmt(c.rmse, c.rmse_sd), dmf_bench.fmt(c.mae, c.mae_sd),
           dmf_bench.fmt(d.rmse, d.rmse_sd), dmf_bench.fmt(d.mae, d.mae_sd),
           round(100.0 * d.covered / d.n, 2) || '%'
    FROM s d LEFT JOIN s c ON c.method = 'DMF-D continuous' WHERE d.method = 'DMF-D'
    UNION ALL SELECT 8, 'paper: DMF (ML-1M)', '0.850', '-', '-', '-', ''
    UNION ALL SELECT 9, 'paper: DMF-D (ML-1M)', '-', '-', '0.898', '0.625', ''
) x ORDER BY ord;
\endif

\if :has_p2
\echo
SELECT format('### P2: extendability, RMSE per area (I old x old, II new user, III new item, IV new x new; seeds %s)', :'seed_list');
\echo
\echo '| model | I | II | III | IV | all |'
\echo '|---|---|---|---|---|---|'
WITH s AS (SELECT * FROM dmf_bench.summary WHERE protocol = 'P2')
SELECT format('| %s | %s | %s | %s | %s | %s |', label, c1, c2, c3, c4, c5) FROM (
    SELECT CASE method WHEN 'global mean' THEN 1 WHEN 'bias' THEN 2 WHEN 'MF' THEN 3 ELSE 4 END AS ord,
           CASE method WHEN 'global mean' THEN 'global mean (area I train)'
                WHEN 'bias' THEN 'mu + b_u + b_i (new biases folded in)'
                WHEN 'MF' THEN 'biased MF (new rows folded in by ridge regression)'
                ELSE 'DMF (trained on area I, dmf_refresh with all train ratings)' END AS label,
           coalesce(max(dmf_bench.fmt(rmse, rmse_sd)) FILTER (WHERE area = 'I'), '-') c1,
           coalesce(max(dmf_bench.fmt(rmse, rmse_sd)) FILTER (WHERE area = 'II'), '-') c2,
           coalesce(max(dmf_bench.fmt(rmse, rmse_sd)) FILTER (WHERE area = 'III'), '-') c3,
           coalesce(max(dmf_bench.fmt(rmse, rmse_sd)) FILTER (WHERE area = 'IV'), '-') c4,
           coalesce(max(dmf_bench.fmt(rmse, rmse_sd)) FILTER (WHERE area = 'all'), '-') c5
    FROM s GROUP BY method
    UNION ALL SELECT 9, 'paper: DMF (ML-1M)', '0.850', '0.883', '0.864', '0.904', '-'
) x ORDER BY ord, label;
\echo
\echo '| MAE / coverage | I | II | III | IV | all |'
\echo '|---|---|---|---|---|---|'
WITH s AS (SELECT * FROM dmf_bench.summary WHERE protocol = 'P2')
SELECT format('| %s | %s | %s | %s | %s | %s |', label, c1, c2, c3, c4, c5) FROM (
    SELECT CASE method WHEN 'global mean' THEN 1 WHEN 'bias' THEN 2 WHEN 'MF' THEN 3 ELSE 4 END AS ord,
           CASE method WHEN 'global mean' THEN 'global mean: MAE' WHEN 'bias' THEN 'mu + b_u + b_i: MAE'
                ELSE method || ': MAE' END AS label,
           coalesce(max(dmf_bench.fmt(mae, mae_sd)) FILTER (WHERE area = 'I'), '-') c1,
           coalesce(max(dmf_bench.fmt(mae, mae_sd)) FILTER (WHERE area = 'II'), '-') c2,
           coalesce(max(dmf_bench.fmt(mae, mae_sd)) FILTER (WHERE area = 'III'), '-') c3,
           coalesce(max(dmf_bench.fmt(mae, mae_sd)) FILTER (WHERE area = 'IV'), '-') c4,
           coalesce(max(dmf_bench.fmt(mae, mae_sd)) FILTER (WHERE area = 'all'), '-') c5
    FROM s GROUP BY method
    UNION ALL
    SELECT 5, method || ': predicted (non-NULL) / test ratings, all seeds',
           coalesce(max(covered || '/' || n) FILTER (WHERE area = 'I'), '-'),
           coalesce(max(covered || '/' || n) FILTER (WHERE area = 'II'), '-'),
           coalesce(max(covered || '/' || n) FILTER (WHERE area = 'III'), '-'),
           coalesce(max(covered || '/' || n) FILTER (WHERE area = 'IV'), '-'),
           coalesce(max(covered || '/' || n) FILTER (WHERE area = 'all'), '-')
    FROM s WHERE method NOT IN ('global mean', 'bias') GROUP BY method
) x ORDER BY ord, label;
\endif

\if :has_runs
\echo
\echo '### Time and memory (mean ± std over seeds)'
\echo
\echo '| run | seeds | train s (wall) | epochs run | s / epoch | best validation RMSE | predictions / s | refresh s | peak backend MB (train / refresh) | threads |'
\echo '|---|---|---|---|---|---|---|---|---|---|'
SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s |',
              protocol || ' ' || method, count(*),
              dmf_bench.fmt(avg(train_seconds), stddev_samp(train_seconds), 1),
              dmf_bench.fmt(avg(epochs_run), stddev_samp(epochs_run), 1),
              dmf_bench.fmt(avg(seconds_per_epoch), stddev_samp(seconds_per_epoch), 2),
              dmf_bench.fmt(avg(best_validation_rmse), stddev_samp(best_validation_rmse), 4),
              dmf_bench.fmt(avg(predictions_per_second), stddev_samp(predictions_per_second), 0),
              dmf_bench.fmt(avg(refresh_seconds), stddev_samp(refresh_seconds), 2),
              dmf_bench.fmt(avg(train_vmhwm_kb) / 1024, stddev_samp(train_vmhwm_kb) / 1024, 0),
              dmf_bench.fmt(avg(refresh_vmhwm_kb) / 1024, stddev_samp(refresh_vmhwm_kb) / 1024, 0),
              coalesce(string_agg(DISTINCT threads, ','), '-'))
FROM dmf_bench.run_figures GROUP BY protocol, method ORDER BY protocol, method;
\endif

SELECT EXISTS (SELECT FROM dmf_bench.mf_runs) AS has_mf \gset
\if :has_mf
\echo
\echo '### The MF yardstick (test/bench/mf_baseline.c, one thread; mean ± std over seeds)'
\echo
\echo '| protocol | seeds | train s (wall, with fold-in) | median train s | epochs run | best validation RMSE |'
\echo '|---|---|---|---|---|---|'
SELECT format('| %s | %s | %s | %s | %s | %s |', protocol, count(*),
              dmf_bench.fmt(avg(seconds), stddev_samp(seconds), 1),
              round((percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds))::numeric, 1),
              dmf_bench.fmt(avg(epochs), stddev_samp(epochs), 1),
              dmf_bench.fmt(avg(validation_rmse), stddev_samp(validation_rmse), 4))
FROM dmf_bench.mf_runs GROUP BY protocol ORDER BY protocol;
\endif
