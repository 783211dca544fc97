-- Floating-point work of one training epoch of model :run, trained on :tbl (columns
-- user_id, item_id), from the data's shape and the model's options, as src/core/train.c does it:
--
--   T training ratings (dmf_info train_rows), V validation ratings, n_u users, n_i items.
--   Blocks: G = round(sqrt(T / batch_size)) (at least 1), g_u = min(G, n_u) user groups x
--   g_i = min(G, n_i) item groups; users and items are shuffled into groups each epoch.
--   A block embeds each of its users and items once. User u (len_u training ratings) is in
--   B_u = g_i (1 - (1 - 1/g_i)^len_u) blocks on average (the item groups that hold one of
--   its items; len_u = its ratings in :tbl x T / rows, the validation rows being a random
--   share), items likewise with g_u:
--     R_u = sum B_u user rows per epoch, R_i = sum B_i item rows
--     I_u = sum B_u len_u - T user inputs read (a block's own targets are hidden), I_i alike
--   Branch sizes s_0 (input) .. s_L = dim; the first layer is sparse (width s_1), the
--   others dense, D = sum over l >= 1 of s_l s_(l+1).
--   sparse_train = 4 (s1_u I_u + s1_i I_i)     forward 2 x inputs x width, backward the same
--   dense_train  = 6 (R_u D_u + R_i D_i)       forward 2 m n k, backward 2x that (dW, dA)
--   loss         = 12 dim T + 2 dim (R_u + R_i) cosine, its gradient, the row norms
--   with validation rows, after the blocks every factor is recomputed (train inputs only):
--   sparse_val   = 2 T (s1_u + s1_i)
--   dense_val    = 2 (n_u D_u + n_i D_i)
--   (+ 2 dim V for the validation predictions, in loss)
-- Adam updates every parameter at every block: no FLOPs worth counting, but memory traffic
-- (params, gradient and two moments read and written: 32 bytes a parameter) reported apart.
--
-- Output: the cblas_sgemm calls of the dense layers, one line each
--   label transa transb M N K beta calls
-- for sgemm_bench.c, with the block's rows at their mean R / blocks; then each branch's
-- Adam update (label A parameters calls).
SET client_min_messages = warning;
DELETE FROM dmf_perf.flops WHERE run = :'run';

CREATE TEMP TABLE perf_shape AS
WITH j AS (SELECT dmf_info(model) AS j FROM dmf_perf.models WHERE name = :'run')
SELECT dmf_perf.jnum(j, 'train_rows') AS t, dmf_perf.jnum(j, 'validation_rows') AS v,
       dmf_perf.jnum(j, 'rows') AS nrows, dmf_perf.jnum(j -> 'options', 'batch_size') AS batch,
       dmf_perf.jnum(j, 'dim') AS dim,
       dmf_perf.jnum(j, 'training_users') AS nu, dmf_perf.jnum(j, 'training_items') AS ni,
       ARRAY(SELECT x::float8 FROM jsonb_array_elements_text(j -> 'user_branch') WITH ORDINALITY a (x, o) ORDER BY o) AS su,
       ARRAY(SELECT x::float8 FROM jsonb_array_elements_text(j -> 'item_branch') WITH ORDINALITY a (x, o) ORDER BY o) AS si
FROM j;

CREATE TEMP TABLE perf_grid AS
SELECT *, least(g, nu) AS gu, least(g, ni) AS gi, least(g, nu) * least(g, ni) AS blocks,
       su[2] AS s1u, si[2] AS s1i,
       (SELECT coalesce(sum(su[l] * su[l + 1]), 0) FROM generate_series(2, cardinality(su) - 1) l) AS du,
       (SELECT coalesce(sum(si[l] * si[l + 1]), 0) FROM generate_series(2, cardinality(si) - 1) l) AS di,
       (SELECT sum(su[l] * su[l + 1] + su[l + 1]) FROM generate_series(1, cardinality(su) - 1) l) AS pu,
       (SELECT sum(si[l] * si[l + 1] + si[l + 1]) FROM generate_series(1, cardinality(si) - 1) l) AS pi
FROM (SELECT *, CASE WHEN sqrt(t / batch) < 1 THEN 1 ELSE floor(sqrt(t / batch) + 0.5) END AS g
      FROM perf_shape) s;

CREATE TEMP TABLE perf_rows AS
SELECT sum(b) AS r, sum(b * len) - (SELECT t FROM perf_grid) AS inputs, 'user' AS side
FROM (SELECT len, CASE WHEN gi = 1 THEN 1 ELSE gi * (1 - exp(greatest(len * ln(1 - 1 / gi), -700))) END AS b
      FROM (SELECT count(*) * (SELECT t / nrows FROM perf_grid) AS len FROM :tbl GROUP BY user_id) u,
           perf_grid) x
UNION ALL
SELECT sum(b), sum(b * len) - (SELECT t FROM perf_grid), 'item'
FROM (SELECT len, CASE WHEN gu = 1 THEN 1 ELSE gu * (1 - exp(greatest(len * ln(1 - 1 / gu), -700))) END AS b
      FROM (SELECT count(*) * (SELECT t / nrows FROM perf_grid) AS len FROM :tbl GROUP BY item_id) i,
           perf_grid) x;

INSERT INTO dmf_perf.flops (run, component, flops, what)
SELECT :'run', c, f, w FROM perf_grid g,
    LATERAL (SELECT r AS ru, inputs AS iu FROM perf_rows WHERE side = 'user') u,
    LATERAL (SELECT r AS ri, inputs AS ii FROM perf_rows WHERE side = 'item') i,
    LATERAL (VALUES
        ('sparse_train', 4 * (g.s1u * u.iu + g.s1i * i.ii), 'first (sparse) layer, forward + backward, in the blocks'),
        ('dense_train', 6 * (u.ru * g.du + i.ri * g.di), 'dense layers (sgemm), forward + backward, in the blocks'),
        ('sparse_val', CASE WHEN g.v > 0 THEN 2 * g.t * (g.s1u + g.s1i) ELSE 0 END, 'first layer, forward of every user and item for the validation RMSE'),
        ('dense_val', CASE WHEN g.v > 0 THEN 2 * (g.nu * g.du + g.ni * g.di) ELSE 0 END, 'dense layers, forward of every user and item for the validation RMSE'),
        ('loss', 12 * g.dim * g.t + 2 * g.dim * (u.ru + i.ri) + 2 * g.dim * g.v, 'cosines, their gradients, row norms, validation predictions'),
        ('adam_bytes', 32 * g.blocks * (g.pu + g.pi), 'memory traffic of Adam (bytes, not FLOPs): every parameter, every block'),
        ('blocks', g.blocks, 'blocks per epoch (' || g.gu || ' user groups x ' || g.gi || ' item groups)'),
        ('user_rows', u.ru, 'user rows embedded per epoch (mean ' || round((u.ru / g.blocks)::numeric, 1) || ' per block)'),
        ('item_rows', i.ri, 'item rows embedded per epoch (mean ' || round((i.ri / g.blocks)::numeric, 1) || ' per block)'),
        ('user_inputs', u.iu, 'ratings read by the user branch per epoch'),
        ('item_inputs', i.ii, 'ratings read by the item branch per epoch'),
        ('params', g.pu + g.pi, 'parameters of both branches')
    ) x (c, f, w);
INSERT INTO dmf_perf.flops (run, component, flops, what)
SELECT :'run', 'total', sum(flops), 'all of the above'
FROM dmf_perf.flops
WHERE run = :'run' AND component IN ('sparse_train', 'dense_train', 'sparse_val', 'dense_val', 'loss');

-- the dense layers' sgemm calls of an epoch
SELECT format('%s_%s_l%s %s %s %s %s %s %s %s', side, kind, l, ta, tb, m, n, k, beta, calls)
FROM (
    SELECT s.side, l, x.*
    FROM perf_grid g
    CROSS JOIN LATERAL (VALUES ('user', g.su, g.nu), ('item', g.si, g.ni)) s (side, sz, nent)
    CROSS JOIN LATERAL (SELECT greatest(1, round(r / g.blocks))::int AS nb FROM perf_rows WHERE perf_rows.side = s.side) b
    CROSS JOIN LATERAL generate_series(2, cardinality(s.sz) - 1) l
    CROSS JOIN LATERAL (VALUES
        (1, 'fwd', 'N', 'N', b.nb, s.sz[l + 1]::int, s.sz[l]::int, 0, g.blocks),
        (2, 'dW', 'T', 'N', s.sz[l]::int, s.sz[l + 1]::int, b.nb, 1, g.blocks),
        (3, 'dA', 'N', 'T', b.nb, s.sz[l]::int, s.sz[l + 1]::int, 0, g.blocks),
        (4, 'val', 'N', 'N', 1024, s.sz[l + 1]::int, s.sz[l]::int, 0, CASE WHEN g.v > 0 THEN floor(s.nent / 1024) ELSE 0 END),
        (5, 'valrest', 'N', 'N', (s.nent::bigint % 1024)::int, s.sz[l + 1]::int, s.sz[l]::int, 0, CASE WHEN g.v > 0 THEN 1 ELSE 0 END)
    ) x (ord, kind, ta, tb, m, n, k, beta, calls)
    WHERE x.calls > 0 AND x.m > 0
    ORDER BY s.side DESC, l, x.ord
) q;
SELECT format('%s_adam A %s %s', side, p, blocks)
FROM perf_grid, LATERAL (VALUES (1, 'user', pu), (2, 'item', pi)) x (o, side, p)
ORDER BY o;

DROP TABLE perf_shape, perf_grid, perf_rows;
