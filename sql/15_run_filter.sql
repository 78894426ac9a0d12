-- token_rotation_internal.run_filter(table, column, options): the condition, besides its key range, that a row must
-- meet for a batch of the run to rotate it, from the run's options (runs.options), or NULL for every row:
-- - where: the subset expression (check_where()'s deparsed text, qualified);
-- - rotated_before (with rotated_at_column): rows whose rotated-at is before that time, or NULL; rotate()
--   stores it as the run's start minus p_older_than, so a row this run rotated is never due again in it;
-- - the token NOT NULL unless fill_null is true (a NULL token means "no secret": Devise, has_secure_token),
--   for a nullable column only.
-- key_range_sql() adds it to every statement of the run (count, batch ends, UPDATE, quantiles), so rows_total
-- and the batches count the matching rows only, and each batch judges a row as it is then.
--   SELECT token_rotation_internal.run_filter('public.tickets', 'token', '{"where": "(tenant_id = 42)"}');
CREATE OR REPLACE FUNCTION token_rotation_internal.run_filter(
      p_table   regclass
    , p_column  name
    , p_options jsonb
)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT nullif(concat_ws(' AND ',
               CASE WHEN p_options->>'where' IS NOT NULL THEN '(' || (p_options->>'where') || ')' END,
               CASE WHEN p_options->>'rotated_before' IS NOT NULL
                    THEN format('(%1$I OPERATOR(pg_catalog.<) %2$L::pg_catalog.timestamptz OR %1$I IS NULL)',
                                p_options->>'rotated_at_column', p_options->>'rotated_before') END,
               CASE WHEN NOT coalesce((p_options->>'fill_null')::boolean, false)
                         AND NOT (SELECT a.attnotnull FROM pg_attribute a
                                   WHERE a.attrelid = p_table AND a.attname = p_column)
                    THEN format('%I IS NOT NULL', p_column) END), '')
$$;

COMMENT ON FUNCTION token_rotation_internal.run_filter(regclass, name, jsonb) IS
    'The condition a row must meet to be rotated by a run (subset expression, older than, token not NULL '
    'unless fill_null), from its options; NULL: every row.';
