-- The measurements of perf.sh as markdown: per section, a table of its figures (key as in
-- perf.csv, value, unit, what it is), then its notes.
SET client_min_messages = warning;
WITH sections (section, title) AS (VALUES
    (1, 'Epoch throughput vs OpenBLAS sgemm'),
    (2, 'Training time'),
    (3, 'Prediction inside queries'),
    (4, 'A million-row query: the model is decoded once per backend'),
    (5, 'Parallel scoring'),
    (6, 'dmf_refresh of the whole ratings table'),
    (7, 'dmf_recommend for every user'),
    (8, 'Scale: a MovieLens-10M-shaped data set'),
    (9, 'Model size limit')
), figs AS (
    SELECT section, string_agg(format('| %s | %s%s | %s |', key, dmf_perf.fmt(value),
                                      CASE WHEN coalesce(unit, '') = '' THEN '' ELSE ' ' || unit END,
                                      replace(what, '|', '\|')), E'\n' ORDER BY ord) AS rows
    FROM dmf_perf.results GROUP BY section
), nts AS (
    SELECT section, string_agg('- ' || text, E'\n' ORDER BY ord) AS rows
    FROM dmf_perf.notes GROUP BY section
)
SELECT string_agg(
           format(E'\n### %s. %s\n', s.section, s.title)
           || CASE WHEN f.rows IS NULL THEN ''
                   ELSE E'\n| figure | value | what it is |\n|---|---|---|\n' || f.rows || E'\n' END
           || CASE WHEN n.rows IS NULL THEN '' ELSE E'\n' || n.rows || E'\n' END,
           '' ORDER BY s.section)
FROM sections s
LEFT JOIN figs f USING (section)
LEFT JOIN nts n USING (section)
WHERE f.rows IS NOT NULL OR n.rows IS NOT NULL;
