-- :n (user, item) pairs to score, from the ids the model knows (the users and items of the
-- ratings): the g-th pair takes user (g * 2654435761 mod 2^32) mod n_users and item
-- (g * 2246822519 + 3266489917 mod 2^32) mod n_items, so the lookups jump around the model
-- as they would for real traffic, and the table is the same on every run. Unlogged: it is
-- scratch data and WAL would only slow the load.
SET client_min_messages = warning;
DROP TABLE IF EXISTS dmf_perf.pairs;
CREATE UNLOGGED TABLE dmf_perf.pairs AS
WITH u AS (SELECT array_agg(user_id ORDER BY user_id) AS a, count(*) AS n FROM dmf_perf.users),
     i AS (SELECT array_agg(item_id ORDER BY item_id) AS a, count(*) AS n FROM dmf_perf.items)
SELECT u.a[1 + (g * 2654435761 % 4294967296) % u.n] AS user_id,
       i.a[1 + ((g * 2246822519 + 3266489917) % 4294967296) % i.n] AS item_id
FROM u, i, generate_series(1::bigint, :n) g;
ANALYZE dmf_perf.pairs;
SELECT format('%s pairs, %s MB', (SELECT count(*) FROM dmf_perf.pairs),
              round(pg_total_relation_size('dmf_perf.pairs') / 1048576.0));
