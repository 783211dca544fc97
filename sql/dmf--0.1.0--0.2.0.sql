-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dmf UPDATE TO '0.2.0'" to load this file. \quit

-- Recommendations and evaluation.

-- The k items with the highest predicted rating for a user of the model,
-- best first, ties by item id; with exclude_rated, the items the user rated
-- in the data the model's factors came from are left out.
CREATE FUNCTION dmf_recommend(
    model bytea,
    user_id bigint,
    k integer DEFAULT 10,
    exclude_rated boolean DEFAULT true)
RETURNS TABLE (item_id bigint, score float8)
AS 'MODULE_PATHNAME', 'dmf_recommend'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 10;

-- The same for a user factor (a user added after training: dmf_user_factor),
-- leaving out the item ids in exclude.
CREATE FUNCTION dmf_recommend(
    model bytea,
    user_factor real[],
    k integer DEFAULT 10,
    exclude bigint[] DEFAULT NULL)
RETURNS TABLE (item_id bigint, score float8)
AS 'MODULE_PATHNAME', 'dmf_recommend_factor'
LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 10;

-- Errors of the model on a held-out ratings relation, over the rows it can
-- predict (covered of n); the discrete errors through its quantizer.
CREATE FUNCTION dmf_evaluate(
    model bytea,
    ratings regclass,
    user_column name DEFAULT 'user_id',
    item_column name DEFAULT 'item_id',
    rating_column name DEFAULT 'rating')
RETURNS TABLE (n bigint, covered bigint, rmse float8, mae float8,
               rmse_discrete float8, mae_discrete float8)
AS 'MODULE_PATHNAME', 'dmf_evaluate'
LANGUAGE C STABLE PARALLEL RESTRICTED ROWS 1;
