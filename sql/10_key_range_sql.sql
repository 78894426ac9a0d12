-- token_rotation.key_range_sql(table, key, column): every statement that reads or rotates a table by ranges
-- of its primary key, built in this one place (identifiers quoted, values bound) for start_run(),
-- plan_slices(), plan() and rotate(). A range is (after, upper]: the keys k with after < k <= upper, where
-- after NULL means from the first key; the *_first forms serve that case (a bound NULL would match nothing).
-- Checkpoints and bounds are stored as text, so every bound is cast to the key's type. Parameters:
--   first_last                                   -> the smallest and the largest key, as text
--   count_upto     ($1 after unused, $2 upper)  -> the rows with k <= upper
--   end_after / end_first      ($1, $2, $3 n)  -> the key n rows after `after` (the n+1-th key), if <= upper
--   update_after / update_first ($1, $2)       -> UPDATE the token of the rows in the range (NULL without column):
--                                                  SET p_set (token_value()'s assignments), else a new uuid
--   quantiles      ($2 upper, $3 fractions, $4 sample percent) -> the key quantiles of a block sample
-- ORDER BY names the key through the table alias: a bare name would sort by the text output column.
-- p_set is the SET list that token_value() built from the format (quoted identifiers and checked functions
-- only; it never holds a value given by the caller); NULL keeps the plain `token = gen_random_uuid()`.
--   SELECT * FROM token_rotation.key_range_sql('public.tickets', 'id', 'token');
CREATE OR REPLACE FUNCTION token_rotation.key_range_sql(
      p_table         regclass
    , p_key           name
    , p_column        name DEFAULT NULL
    , p_set           text DEFAULT NULL
    , OUT first_last   text
    , OUT count_upto   text
    , OUT end_after    text
    , OUT end_first    text
    , OUT update_after text
    , OUT update_first text
    , OUT quantiles    text
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('SELECT (SELECT t.%1$I::text FROM ONLY %2$s AS t ORDER BY t.%1$I LIMIT 1), '
                  '(SELECT t.%1$I::text FROM ONLY %2$s AS t ORDER BY t.%1$I DESC LIMIT 1)', p_key, q.target)
         , format('SELECT count(*) FROM ONLY %2$s AS t WHERE t.%1$I <= $2::%3$s', p_key, q.target, q.key_type)
         , format('SELECT t.%1$I::text FROM ONLY %2$s AS t WHERE t.%1$I > $1::%3$s AND t.%1$I <= $2::%3$s '
                  'ORDER BY t.%1$I OFFSET $3 LIMIT 1', p_key, q.target, q.key_type)
         , format('SELECT t.%1$I::text FROM ONLY %2$s AS t WHERE t.%1$I <= $2::%3$s '
                  'ORDER BY t.%1$I OFFSET $3 LIMIT 1', p_key, q.target, q.key_type)
         , CASE WHEN p_column IS NOT NULL THEN
               format('UPDATE ONLY %2$s SET %4$s '
                      'WHERE %1$I > $1::%3$s AND %1$I <= $2::%3$s', p_key, q.target, q.key_type, q.set_list) END
         , CASE WHEN p_column IS NOT NULL THEN
               format('UPDATE ONLY %2$s SET %4$s '
                      'WHERE %1$I <= $2::%3$s', p_key, q.target, q.key_type, q.set_list) END
         , format('SELECT (percentile_disc($3::float8[]) WITHIN GROUP (ORDER BY t.%1$I))::text[] '
                  'FROM ONLY %2$s AS t TABLESAMPLE SYSTEM ($4::float4) WHERE t.%1$I <= $2::%3$s',
                  p_key, q.target, q.key_type)
      FROM (SELECT format('%I.%I', n.nspname, c.relname) AS target, a.atttypid::regtype AS key_type
                 , coalesce(p_set, format('%I = pg_catalog.gen_random_uuid()', p_column)) AS set_list
              FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = p_key AND NOT a.attisdropped
             WHERE c.oid = p_table) AS q
$$;

COMMENT ON FUNCTION token_rotation.key_range_sql(regclass, name, name, text) IS
    'The statements over key ranges (after, upper] of a table: first/last key, count, batch ends, UPDATE, quantiles.';
