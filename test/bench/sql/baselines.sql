-- Baselines for seed :seed on the split of split.sql.
-- psql variables: seed, lambda_u, lambda_i, rounds, do_p1, do_p2.
--   global mean: mu of the training ratings.
--   bias:        r = mu + b_u + b_i (fit_bias in setup.sql), clamped to the rating range;
--                unknown users/items get b = 0.
-- P2: both are fitted on the area-I train ratings. Then new users' b_u are folded in from
-- their train ratings on old items, and new items' b_i from the train ratings that old
-- users gave them, with mu and the old biases fixed:
--   b_u(new) = sum(r - mu - b_i) / (lambda_u + n),  b_i(new) = sum(r - mu - b_u) / (lambda_i + n)
-- (the same inputs the protocol gives DMF for a new row / column).
SET client_min_messages = warning;
\o /dev/null
SELECT min(level) AS rmin, max(level) AS rmax FROM dmf_bench.levels \gset

\if :do_p1
SELECT dmf_bench.score(:seed, 'P1', 'global mean',
    'SELECT ''all''::text AS area, t.rating, m.mu AS p
     FROM dmf_bench.test_s' || :seed || ' t, (SELECT avg(rating) AS mu FROM dmf_bench.train_s' || :seed || ') m');

SELECT dmf_bench.fit_bias('p1_s' || :seed, ('dmf_bench.train_s' || :seed)::regclass, :lambda_u, :lambda_i, :rounds);
SELECT dmf_bench.score(:seed, 'P1', 'bias',
    'SELECT ''all''::text AS area, t.rating,
            dmf_bench.clamp(m.mu + coalesce(bu.b, 0) + coalesce(bi.b, 0), ' || :rmin || ', ' || :rmax || ') AS p
     FROM dmf_bench.test_s' || :seed || ' t
     JOIN dmf_bench.bias_mu m ON m.run = ''p1_s' || :seed || '''
     LEFT JOIN dmf_bench.bias_user bu ON bu.run = m.run AND bu.user_id = t.user_id
     LEFT JOIN dmf_bench.bias_item bi ON bi.run = m.run AND bi.item_id = t.item_id');
\endif

\if :do_p2
SELECT dmf_bench.score(:seed, 'P2', 'global mean',
    'SELECT t.area, t.rating, m.mu AS p
     FROM dmf_bench.test_s' || :seed || ' t, (SELECT avg(rating) AS mu FROM dmf_bench.p2_train_s' || :seed || ') m', true);

SELECT dmf_bench.fit_bias('p2_s' || :seed, ('dmf_bench.p2_train_s' || :seed)::regclass, :lambda_u, :lambda_i, :rounds) AS mu \gset p2_
-- fold in new users (their train ratings on old items), then new items (train ratings of old users)
INSERT INTO dmf_bench.bias_user
SELECT 'p2_s' || :seed, f.user_id, sum(f.rating - :p2_mu - coalesce(bi.b, 0)) / (:lambda_u + count(*)), count(*)
FROM dmf_bench.p2_fold_s:seed f
LEFT JOIN dmf_bench.bias_item bi ON bi.run = 'p2_s' || :seed AND bi.item_id = f.item_id
WHERE f.new_user AND NOT f.new_item
GROUP BY f.user_id;
INSERT INTO dmf_bench.bias_item
SELECT 'p2_s' || :seed, f.item_id, sum(f.rating - :p2_mu - coalesce(bu.b, 0)) / (:lambda_i + count(*)), count(*)
FROM dmf_bench.p2_fold_s:seed f
LEFT JOIN dmf_bench.bias_user bu ON bu.run = 'p2_s' || :seed AND bu.user_id = f.user_id
WHERE f.new_item AND NOT f.new_user
GROUP BY f.item_id;
SELECT dmf_bench.score(:seed, 'P2', 'bias',
    'SELECT t.area, t.rating,
            dmf_bench.clamp(m.mu + coalesce(bu.b, 0) + coalesce(bi.b, 0), ' || :rmin || ', ' || :rmax || ') AS p
     FROM dmf_bench.test_s' || :seed || ' t
     JOIN dmf_bench.bias_mu m ON m.run = ''p2_s' || :seed || '''
     LEFT JOIN dmf_bench.bias_user bu ON bu.run = m.run AND bu.user_id = t.user_id
     LEFT JOIN dmf_bench.bias_item bi ON bi.run = m.run AND bi.item_id = t.item_id', true);
\endif

\o
SELECT format('seed %s baselines: %s', :seed, string_agg(
           format('%s %s %s RMSE %s', protocol, area, method, round(rmse::numeric, 4)), '; '
           ORDER BY protocol, method, area))
FROM dmf_bench.metrics WHERE seed = :seed AND method IN ('global mean', 'bias');
