-- After loading dmf_bench.raw: one rating per (user, item), the rating levels.
-- Duplicated (user, item) pairs keep their latest rating (by timestamp when there is one).
INSERT INTO dmf_bench.ratings
SELECT DISTINCT ON (user_id, item_id) user_id, item_id, rating
FROM dmf_bench.raw
WHERE user_id IS NOT NULL AND item_id IS NOT NULL AND rating IS NOT NULL
ORDER BY user_id, item_id, ts DESC NULLS LAST;
INSERT INTO dmf_bench.meta VALUES ('raw_rows', (SELECT count(*) FROM dmf_bench.raw));
TRUNCATE dmf_bench.raw;
INSERT INTO dmf_bench.levels SELECT DISTINCT rating FROM dmf_bench.ratings;
INSERT INTO dmf_bench.meta
SELECT 'integer_levels',
       (bool_and(level = round(level)) AND count(*) = max(level) - min(level) + 1)::text
FROM dmf_bench.levels;
ANALYZE dmf_bench.ratings;
SELECT format('%s ratings (%s rows read), %s users, %s items, mean %s, levels %s',
              count(*), (SELECT value FROM dmf_bench.meta WHERE key = 'raw_rows'),
              count(DISTINCT user_id), count(DISTINCT item_id), round(avg(rating)::numeric, 4),
              (SELECT string_agg(level::text, ',' ORDER BY level) FROM dmf_bench.levels))
FROM dmf_bench.ratings;
