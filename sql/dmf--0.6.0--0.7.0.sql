-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dmf UPDATE TO '0.7.0'" to load this file. \quit

-- dmf_train gains init, a model to start from.  A new argument with a
-- default is a new signature: the old one goes, so that calls are not
-- ambiguous, and the new one gets its privileges (a site that revoked
-- EXECUTE from PUBLIC keeps it revoked).
DO $upgrade$
DECLARE
    old_acl aclitem[];
    entry record;
BEGIN
    SELECT p.proacl INTO old_acl FROM pg_catalog.pg_proc p
    WHERE p.oid = 'dmf_train(regclass, name, name, name, jsonb)'::pg_catalog.regprocedure;

    DROP FUNCTION dmf_train(regclass, name, name, name, jsonb);

    -- Train a DMF model on a ratings relation; returns the model as bytea.
    -- With init, training starts from that model's weights.
    CREATE FUNCTION dmf_train(
        ratings regclass,
        user_column name DEFAULT 'user_id',
        item_column name DEFAULT 'item_id',
        rating_column name DEFAULT 'rating',
        options jsonb DEFAULT '{}',
        init bytea DEFAULT NULL)
    RETURNS bytea
    AS 'MODULE_PATHNAME', 'dmf_train'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;

    -- NULL: the default privileges, which the new function has too
    IF old_acl IS NOT NULL THEN
        REVOKE ALL ON FUNCTION dmf_train(regclass, name, name, name, jsonb, bytea) FROM PUBLIC;
        FOR entry IN SELECT * FROM pg_catalog.aclexplode(old_acl) LOOP
            EXECUTE pg_catalog.format(
                'GRANT EXECUTE ON FUNCTION dmf_train(regclass, name, name, name, jsonb, bytea) TO %s%s',
                CASE WHEN entry.grantee = 0 THEN 'PUBLIC' ELSE entry.grantee::pg_catalog.regrole::text END,
                CASE WHEN entry.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
    END IF;
END
$upgrade$;

-- Every dmf_train and dmf_refresh running on the server: one row each,
-- gone when it ends.  Another role's details show only as pg_stat_activity
-- would show them.  Needs dmf in shared_preload_libraries.
CREATE FUNCTION dmf_progress(
    OUT pid integer,
    OUT datname text,
    OUT usename text,
    OUT command text,
    OUT relation text,
    OUT phase text,
    OUT epoch integer,
    OUT epochs integer,
    OUT rows_read bigint,
    OUT train_rmse float8,
    OUT validation_rmse float8,
    OUT elapsed interval,
    OUT remaining interval)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dmf_progress'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

CREATE VIEW dmf_progress AS SELECT * FROM dmf_progress();

GRANT SELECT ON dmf_progress TO PUBLIC;
