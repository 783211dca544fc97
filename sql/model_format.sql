-- Corrupted or foreign model bytes are an ERROR, never a crash.
\set VERBOSITY default

SELECT dmf_predict(''::bytea, 1, 1);
SELECT dmf_predict('\xdeadbeef'::bytea, 1, 1);
SELECT dmf_info('not a model at all, just some text that is long enough'::bytea);
-- a header alone (terse: the detail holds the model's size, which varies)
\set VERBOSITY terse
SELECT dmf_predict(substring(model FROM 1 FOR 128), 1, 1) FROM models WHERE name = 'base';
\set VERBOSITY default
-- a future format version (bytes 5-6, little-endian)
SELECT dmf_predict(set_byte(model, 4, 2), 1, 1) FROM models WHERE name = 'base';
-- a flipped payload byte
SELECT dmf_predict(set_byte(model, 5000, get_byte(model, 5000) # 1), 1, 1) FROM models WHERE name = 'base';
-- the magic of another format
SELECT dmf_info(overlay(model PLACING 'XXXX'::bytea FROM 1)) FROM models WHERE name = 'base';

-- Every truncation of the header and many beyond it, every bit of the
-- header, and byte flips across the payload: all rejected, none crash.
CREATE FUNCTION count_rejected(variants bytea[]) RETURNS TABLE (tried int, rejected int, codes text)
LANGUAGE plpgsql AS $$
DECLARE
    v bytea;
    codes_seen text[] := '{}';
BEGIN
    tried := 0; rejected := 0;
    FOREACH v IN ARRAY variants LOOP
        tried := tried + 1;
        BEGIN
            PERFORM dmf_predict(v, 1, 1);
        EXCEPTION WHEN OTHERS THEN
            rejected := rejected + 1;
            IF NOT SQLSTATE = ANY (codes_seen) THEN
                codes_seen := codes_seen || SQLSTATE;
            END IF;
        END;
    END LOOP;
    SELECT string_agg(c, ',' ORDER BY c) INTO codes FROM unnest(codes_seen) c;
    RETURN NEXT;
END $$;

-- truncations: every length up to 400, then 300 lengths spread over the rest
SELECT * FROM count_rejected(ARRAY(
    SELECT substring(model FROM 1 FOR n) FROM models, generate_series(0, 399) n WHERE name = 'base'
    UNION ALL
    SELECT substring(model FROM 1 FOR 400 + (length(model) - 401) * k / 300)
    FROM models, generate_series(0, 299) k WHERE name = 'base'));

-- every single-bit flip of the header and of the section table
SELECT * FROM count_rejected(ARRAY(
    SELECT set_bit(model, b, 1 - get_bit(model, b)) FROM models, generate_series(0, 8 * 400 - 1) b
    WHERE name = 'base'));

-- byte flips at 3000 places spread over the payload
SELECT * FROM count_rejected(ARRAY(
    SELECT set_byte(model, p, (get_byte(model, p) + 1 + p % 255) % 256)
    FROM models, generate_series(0, 2999) k,
         LATERAL (SELECT 400 + (length(model) - 401) * k / 3000 AS p) s
    WHERE name = 'base'));

-- the intact model still works after all that
SELECT dmf_predict(model, 1, 1) BETWEEN 1 AND 5 AS intact FROM models WHERE name = 'base';
