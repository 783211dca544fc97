-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dmf UPDATE TO '0.5.0'" to load this file. \quit

-- How well the model ranks a held-out relation of (user, item) rows: per
-- user it has a factor for, the top k of dmf_recommend(model, user, k)
-- against the user's held-out items; metrics averaged over those users.
CREATE FUNCTION dmf_evaluate_ranking(
    model bytea,
    heldout regclass,
    user_column name DEFAULT 'user_id',
    item_column name DEFAULT 'item_id',
    k integer DEFAULT 10)
RETURNS TABLE (users bigint, hit_rate float8, "precision" float8, recall float8,
               ndcg float8, map float8)
AS 'MODULE_PATHNAME', 'dmf_evaluate_ranking'
LANGUAGE C STABLE PARALLEL RESTRICTED ROWS 1;
