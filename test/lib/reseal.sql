-- Re-sealing model bytes in SQL, for tests that forge models which must get
-- past the checksums (test/t/020_sql_fuzz.sh, test/t/021_nonfinite_models.sh):
-- little-endian fields, CRC32C, the layout of src/core/model_format.h.
--   \i test/lib/reseal.sql     (psql: creates the functions in the current schema)
CREATE FUNCTION u32(b bytea, o int) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
-- (parenthesised: | and << have the same precedence in SQL)
SELECT get_byte(b, o)::bigint | (get_byte(b, o + 1)::bigint << 8)
     | (get_byte(b, o + 2)::bigint << 16) | (get_byte(b, o + 3)::bigint << 24)
$$;
CREATE FUNCTION put_u32(b bytea, o int, v bigint) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
SELECT set_byte(set_byte(set_byte(set_byte(b, o, (v & 255)::int), o + 1, ((v >> 8) & 255)::int),
                o + 2, ((v >> 16) & 255)::int), o + 3, ((v >> 24) & 255)::int)
$$;
CREATE FUNCTION put_u64(b bytea, o int, v numeric) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
SELECT put_u32(put_u32(b, o, (v % 4294967296)::bigint), o + 4, floor(v / 4294967296)::bigint)
$$;
-- float8send is big-endian
CREATE FUNCTION put_f64(b bytea, o int, v float8) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE be bytea := float8send(v);
BEGIN
    FOR k IN 0 .. 7 LOOP
        b := set_byte(b, o + k, get_byte(be, 7 - k));
    END LOOP;
    RETURN b;
END $$;
CREATE FUNCTION crc32c_table() RETURNS bigint[] LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE t bigint[] := '{}'; c bigint;
BEGIN
    FOR n IN 0 .. 255 LOOP
        c := n;
        FOR k IN 1 .. 8 LOOP
            c := CASE WHEN c & 1 = 1 THEN (c >> 1) # 2197175160 ELSE c >> 1 END;  -- 0x82F63B78
        END LOOP;
        t := t || c;
    END LOOP;
    RETURN t;
END $$;
CREATE FUNCTION crc32c(b bytea, start int, stop int) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE t bigint[] := crc32c_table(); c bigint := 4294967295; x int;
BEGIN
    FOREACH x IN ARRAY ARRAY(SELECT get_byte(b, k) FROM generate_series(start, stop - 1) k) LOOP
        c := t[((c # x) & 255) + 1] # (c >> 8);
    END LOOP;
    RETURN c # 4294967295;
END $$;
-- format version 2 or 3 (a usable page layout: page size at 88, N pages at 92):
-- the N page checksums at the end, then the payload CRC at 32 over them;
-- else (version 1) the payload CRC over [128, length); then the header CRC
-- at 36 over the header without it
CREATE FUNCTION reseal(b bytea) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE np bigint := u32(b, 92); ps bigint := u32(b, 88); body bigint;
BEGIN
    IF u32(b, 4) & 65535 >= 2 AND np > 0 AND ps > 0 AND 4 * np < length(b) - 128 THEN
        body := length(b) - 4 * np;
        FOR k IN 0 .. np - 1 LOOP
            EXIT WHEN 128 + k * ps >= body;
            b := put_u32(b, (body + 4 * k)::int,
                         crc32c(b, (128 + k * ps)::int, least(128 + (k + 1) * ps, body)::int));
        END LOOP;
        b := put_u32(b, 32, crc32c(b, body::int, length(b)));
    ELSE
        b := put_u32(b, 32, crc32c(b, 128, length(b)));
    END IF;
    RETURN put_u32(b, 36, crc32c(substring(b FROM 1 FOR 36) || substring(b FROM 41 FOR 88), 0, 124));
END $$;
-- where section `kind` is: (entry offset in the table, data offset, data length)
CREATE FUNCTION sect(b bytea, kind int, OUT entry int, OUT off int, OUT len int)
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    FOR k IN 0 .. u32(b, 68) - 1 LOOP
        IF u32(b, 128 + 24 * k) = kind THEN
            entry := 128 + 24 * k;
            off := u32(b, entry + 8);
            len := u32(b, entry + 16);
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'no section of kind %', kind;
END $$;
-- b without section `kind`: its table entry removed, the later entries moved
-- up, 24 zero bytes where the table ended (the data stays where it was)
CREATE FUNCTION drop_section(b bytea, kind int) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE s record := sect(b, kind); ns int := u32(b, 68);
BEGIN
    b := overlay(b PLACING substring(b FROM s.entry + 25 FOR 128 + 24 * ns - s.entry - 24)
                           || decode(repeat('00', 24), 'hex')
                 FROM s.entry + 1);
    RETURN put_u32(b, 68, ns - 1);
END $$;
-- b with the metadata section replaced by `txt` (shorter or as long): the
-- section keeps its offset, its length becomes the new text's
CREATE FUNCTION put_meta(b bytea, txt bytea) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE s record := sect(b, 1);
BEGIN
    IF length(txt) > s.len THEN
        RAISE EXCEPTION 'put_meta: % bytes do not fit in % bytes', length(txt), s.len;
    END IF;
    b := overlay(b PLACING txt || decode(repeat('00', s.len - length(txt)), 'hex') FROM s.off + 1);
    RETURN put_u64(b, s.entry + 16, length(txt));
END $$;
