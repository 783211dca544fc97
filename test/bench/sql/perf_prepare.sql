-- After loading dmf_perf.raw: one rating per (user, item) as bench.sh keeps it (the latest
-- by timestamp), the test split of bench.sh's seed 1 (20% of the ratings, by hashtext, as
-- split.sql), and the users and items.
SET client_min_messages = warning;
INSERT INTO dmf_perf.ratings
SELECT DISTINCT ON (user_id, item_id) user_id, item_id, rating
FROM dmf_perf.raw
WHERE user_id IS NOT NULL AND item_id IS NOT NULL AND rating IS NOT NULL
ORDER BY user_id, item_id, ts DESC NULLS LAST;
TRUNCATE dmf_perf.raw;
ANALYZE dmf_perf.ratings;

CREATE TABLE dmf_perf.test AS
SELECT user_id, item_id, rating FROM dmf_perf.ratings
WHERE abs(hashtext('1:' || user_id::text || ':' || item_id::text)::bigint) % 100 >= 80;
CREATE TABLE dmf_perf.users AS SELECT DISTINCT user_id FROM dmf_perf.ratings;
CREATE TABLE dmf_perf.items AS SELECT DISTINCT item_id FROM dmf_perf.ratings;
ANALYZE dmf_perf.test; ANALYZE dmf_perf.users; ANALYZE dmf_perf.items;

SELECT format('%s ratings, %s users, %s items, test split %s ratings',
              (SELECT count(*) FROM dmf_perf.ratings), (SELECT count(*) FROM dmf_perf.users),
              (SELECT count(*) FROM dmf_perf.items), (SELECT count(*) FROM dmf_perf.test));
