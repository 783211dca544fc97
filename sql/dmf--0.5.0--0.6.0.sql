-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dmf UPDATE TO '0.6.0'" to load this file. \quit

-- dmf_recommend gains candidates (and cold_start); dmf_evaluate_ranking a
-- rating threshold.  A new argument with a default is a new signature: the
-- old ones go, so that calls are not ambiguous.
DROP FUNCTION dmf_recommend(bytea, bigint, integer, boolean);
DROP FUNCTION dmf_recommend(bytea, real[], integer, bigint[]);
DROP FUNCTION dmf_evaluate_ranking(bytea, regclass, name, name, integer);

-- The k items with the highest predicted rating for a user of the model,
-- best first, ties by item id; with exclude_rated, the items the user rated
-- in the data the model's factors came from are left out.  Given candidates,
-- only those items are ranked (ids the model does not know are skipped), in
-- dmf_predict's order.  A user the model has no factor for gets no rows, or
-- with cold_start the most popular items (dmf_popular_items) with a NULL
-- score.
CREATE FUNCTION dmf_recommend(
    model bytea,
    user_id bigint,
    k integer DEFAULT 10,
    exclude_rated boolean DEFAULT true,
    candidates bigint[] DEFAULT NULL,
    cold_start boolean DEFAULT false)
RETURNS TABLE (item_id bigint, score float8)
AS 'MODULE_PATHNAME', 'dmf_recommend'
LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 10;

-- The same for a user factor (a user added after training: dmf_user_factor),
-- leaving out the item ids in exclude.
CREATE FUNCTION dmf_recommend(
    model bytea,
    user_factor real[],
    k integer DEFAULT 10,
    exclude bigint[] DEFAULT NULL,
    candidates bigint[] DEFAULT NULL)
RETURNS TABLE (item_id bigint, score float8)
AS 'MODULE_PATHNAME', 'dmf_recommend_factor'
LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 10;

-- The k items most users of the model have in their row (the data its
-- factors came from), most first, ties by item id: what a user without a
-- factor can be served.
CREATE FUNCTION dmf_popular_items(
    model bytea,
    k integer DEFAULT 10,
    candidates bigint[] DEFAULT NULL)
RETURNS TABLE (item_id bigint, users bigint)
AS 'MODULE_PATHNAME', 'dmf_popular_items'
LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 10;

-- The k items whose factors have the highest cosine with the item's, the
-- item itself left out; dmf_similar_users likewise for users.
CREATE FUNCTION dmf_similar_items(model bytea, item_id bigint, k integer DEFAULT 10)
RETURNS TABLE (item_id bigint, similarity float8)
AS 'MODULE_PATHNAME', 'dmf_similar_items'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 10;

CREATE FUNCTION dmf_similar_users(model bytea, user_id bigint, k integer DEFAULT 10)
RETURNS TABLE (user_id bigint, similarity float8)
AS 'MODULE_PATHNAME', 'dmf_similar_users'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 10;

-- The k users with the highest predicted rating for an item, best first,
-- ties by user id (targeting); with exclude_rated, users who have the item
-- in the model's data are left out.
CREATE FUNCTION dmf_recommend_users(
    model bytea,
    item_id bigint,
    k integer DEFAULT 10,
    exclude_rated boolean DEFAULT true)
RETURNS TABLE (user_id bigint, score float8)
AS 'MODULE_PATHNAME', 'dmf_recommend_users'
LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 10;

-- Every stored factor in one scan, ids ascending (what dmf_user_factor and
-- dmf_item_factor return for each id), e.g. to export to a vector index.
CREATE FUNCTION dmf_user_factors(model bytea)
RETURNS TABLE (user_id bigint, factor real[])
AS 'MODULE_PATHNAME', 'dmf_user_factors'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000;

CREATE FUNCTION dmf_item_factors(model bytea)
RETURNS TABLE (item_id bigint, factor real[])
AS 'MODULE_PATHNAME', 'dmf_item_factors'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000;

-- The user's own ratings that support the prediction for an item most:
-- each rating's influence is the prediction from the user's whole row minus
-- the prediction from the row without it, both through the user branch and
-- fold-in.  The row comes from ratings when given, else (implicit feedback
-- only) from what the model stores of the user.
CREATE FUNCTION dmf_explain(
    model bytea,
    user_id bigint,
    item_id bigint,
    k integer DEFAULT 3,
    ratings regclass DEFAULT NULL,
    user_column name DEFAULT 'user_id',
    item_column name DEFAULT 'item_id',
    rating_column name DEFAULT 'rating')
RETURNS TABLE (item_id bigint, rating float8, influence float8)
AS 'MODULE_PATHNAME', 'dmf_explain'
LANGUAGE C STABLE PARALLEL RESTRICTED ROWS 3;

-- How well the model ranks a held-out relation of (user, item) rows: per
-- user it has a factor for, the top k of dmf_recommend(model, user, k)
-- against the user's held-out items; metrics averaged over those users.
-- With rating_column and min_rating, only rows rated at least min_rating
-- are relevant.
CREATE FUNCTION dmf_evaluate_ranking(
    model bytea,
    heldout regclass,
    user_column name DEFAULT 'user_id',
    item_column name DEFAULT 'item_id',
    k integer DEFAULT 10,
    rating_column name DEFAULT NULL,
    min_rating float8 DEFAULT NULL)
RETURNS TABLE (users bigint, hit_rate float8, "precision" float8, recall float8,
               ndcg float8, map float8)
AS 'MODULE_PATHNAME', 'dmf_evaluate_ranking'
LANGUAGE C STABLE PARALLEL RESTRICTED ROWS 1;
