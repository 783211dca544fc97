-- The split of evaluation.md for seed :seed (psql variable).
--   part: 75% train, 5% val, 20% test, by abs(hashtext(s:user:item)) % 100
--   new user / new item (P2): abs(hashtext('u' s:user)) % 10 = 0, likewise 'i' for items
-- abs(hashtext(..)::bigint) equals abs(hashtext(..)) wherever the latter is defined
-- (it also survives hashtext = -2^31).
-- Tables (same columns user_id, item_id, rating everywhere; test_s* also has area):
--   train_sN, val_sN, test_sN         P1 (test_sN.area tells the P2 area)
--   p2_train_sN, p2_val_sN            P2: train / val ratings of area I
--   (P2 refresh reads train_sN: the train ratings of every area)
SET client_min_messages = warning;
DROP TABLE IF EXISTS dmf_bench.split_s:seed, dmf_bench.train_s:seed, dmf_bench.val_s:seed,
    dmf_bench.test_s:seed, dmf_bench.p2_train_s:seed, dmf_bench.p2_val_s:seed;

CREATE TABLE dmf_bench.split_s:seed AS
SELECT user_id, item_id, rating,
       CASE WHEN abs(hashtext(:seed::text || ':' || user_id::text || ':' || item_id::text)::bigint) % 100 < 75 THEN 'train'
            WHEN abs(hashtext(:seed::text || ':' || user_id::text || ':' || item_id::text)::bigint) % 100 < 80 THEN 'val'
            ELSE 'test' END AS part,
       abs(hashtext('u' || :seed::text || ':' || user_id::text)::bigint) % 10 = 0 AS new_user,
       abs(hashtext('i' || :seed::text || ':' || item_id::text)::bigint) % 10 = 0 AS new_item
FROM dmf_bench.ratings;

CREATE TABLE dmf_bench.train_s:seed AS
    SELECT user_id, item_id, rating FROM dmf_bench.split_s:seed WHERE part = 'train';
CREATE TABLE dmf_bench.val_s:seed AS
    SELECT user_id, item_id, rating FROM dmf_bench.split_s:seed WHERE part = 'val';
CREATE TABLE dmf_bench.test_s:seed AS
    SELECT user_id, item_id, rating,
           CASE WHEN NOT new_user AND NOT new_item THEN 'I'
                WHEN new_user AND NOT new_item THEN 'II'
                WHEN NOT new_user AND new_item THEN 'III'
                ELSE 'IV' END AS area
    FROM dmf_bench.split_s:seed WHERE part = 'test';
CREATE TABLE dmf_bench.p2_train_s:seed AS
    SELECT user_id, item_id, rating FROM dmf_bench.split_s:seed
    WHERE part = 'train' AND NOT new_user AND NOT new_item;
CREATE TABLE dmf_bench.p2_val_s:seed AS
    SELECT user_id, item_id, rating FROM dmf_bench.split_s:seed
    WHERE part = 'val' AND NOT new_user AND NOT new_item;
-- train ratings of new users on old items / of old users on new items (bias fold-in)
CREATE TABLE dmf_bench.p2_fold_s:seed AS
    SELECT user_id, item_id, rating, new_user, new_item FROM dmf_bench.split_s:seed
    WHERE part = 'train' AND new_user <> new_item;
DROP TABLE dmf_bench.split_s:seed;
ANALYZE dmf_bench.train_s:seed; ANALYZE dmf_bench.val_s:seed; ANALYZE dmf_bench.test_s:seed;
ANALYZE dmf_bench.p2_train_s:seed; ANALYZE dmf_bench.p2_val_s:seed; ANALYZE dmf_bench.p2_fold_s:seed;

SELECT format('seed %s: train %s, val %s, test %s (areas I/II/III/IV: %s); P2 train (area I) %s, val %s',
    :seed,
    (SELECT count(*) FROM dmf_bench.train_s:seed), (SELECT count(*) FROM dmf_bench.val_s:seed),
    (SELECT count(*) FROM dmf_bench.test_s:seed),
    (SELECT string_agg(c::text, '/' ORDER BY area) FROM
        (SELECT area, count(*) c FROM dmf_bench.test_s:seed GROUP BY area) a),
    (SELECT count(*) FROM dmf_bench.p2_train_s:seed), (SELECT count(*) FROM dmf_bench.p2_val_s:seed));
