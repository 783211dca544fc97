-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION dmf" to load this file. \quit

-- Train a DMF model on a ratings relation; returns the model as bytea.
CREATE FUNCTION dmf_train(
    ratings regclass,
    user_column name DEFAULT 'user_id',
    item_column name DEFAULT 'item_id',
    rating_column name DEFAULT 'rating',
    options jsonb DEFAULT '{}')
RETURNS bytea
AS 'MODULE_PATHNAME', 'dmf_train'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Predicted rating of a user for an item; NULL if the model knows neither.
CREATE FUNCTION dmf_predict(model bytea, user_id bigint, item_id bigint)
RETURNS float8
AS 'MODULE_PATHNAME', 'dmf_predict'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Shape, options and training metrics of a model.
CREATE FUNCTION dmf_info(model bytea)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dmf_info'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
