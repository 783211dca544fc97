-- A deterministic synthetic MovieLens-shaped data set (for --quick; no MovieLens data):
-- 600 users x 400 items (item ids 2, 5, 8, ..., not contiguous), about 16% observed, more
-- for active users and popular items; rating = round(3.6 + biases + rank-3 term + noise)
-- clamped to 1..5. Every random number comes from hashtext, so it is the same everywhere.
CREATE FUNCTION pg_temp.unif(t text) RETURNS float8 LANGUAGE sql IMMUTABLE AS
$$ SELECT (abs(hashtext(t)::bigint) % 1000003) / 1000003.0 $$;

INSERT INTO dmf_bench.raw (user_id, item_id, rating)
WITH u AS (
    SELECT u,
           2 * pg_temp.unif('su1:' || u) - 1 AS a1, 2 * pg_temp.unif('su2:' || u) - 1 AS a2,
           2 * pg_temp.unif('su3:' || u) - 1 AS a3, 2 * pg_temp.unif('sbu:' || u) - 1 AS b,
           pg_temp.unif('sau:' || u) AS activity
    FROM generate_series(1, 600) u
), i AS (
    SELECT i,
           2 * pg_temp.unif('si1:' || i) - 1 AS c1, 2 * pg_temp.unif('si2:' || i) - 1 AS c2,
           2 * pg_temp.unif('si3:' || i) - 1 AS c3, 2 * pg_temp.unif('sbi:' || i) - 1 AS b,
           pg_temp.unif('spi:' || i) AS popularity
    FROM generate_series(1, 400) i
)
SELECT u.u, 3 * i.i - 1,
       greatest(1, least(5, round(
           3.6 + 0.5 * u.b + 0.5 * i.b + 1.2 * (u.a1 * i.c1 + u.a2 * i.c2 + u.a3 * i.c3)
           + 0.8 * (pg_temp.unif('sn1:' || u.u || ':' || i.i) + pg_temp.unif('sn2:' || u.u || ':' || i.i)
                    + pg_temp.unif('sn3:' || u.u || ':' || i.i) - 1.5))))
FROM u CROSS JOIN i
WHERE pg_temp.unif('so:' || u.u || ':' || i.i) < 0.04 + 0.5 * u.activity * i.popularity;
