-- token_rotation.key_range_sql(table, key, column): every statement that reads or rotates a table by ranges
-- of its key, built in this one place (identifiers quoted, values bound) for start_run(), plan_slices(),
-- plan() and rotate(). The key is one column or several (a composite primary key, or the columns p_key
-- named); a key value is a text[] of its columns' text forms, and a range is (after, upper]: the keys k with
-- after < k <= upper, compared as a row, (a, b) > ($1[1]::ta, $1[2]::tb), which a b-tree on (a, b) serves
-- (a single column compares plainly). After NULL means from the first key; the *_first forms serve that case
-- (a bound NULL would match nothing). Every bound is cast back to its column's full type (char(6), not
-- char(1)). A partitioned table is read and updated through its parent, so that one statement reaches every
-- leaf partition (UPDATE ONLY on a partitioned parent would touch nothing); a plain table with ONLY, as
-- inheritance children are not its rows.
--   first_last                                   -> the smallest and the largest key
--   count_upto     ($1 after unused, $2 upper)  -> the rows with k <= upper
--   end_after / end_first      ($1, $2, $3 n)  -> the key n rows after `after` (the n+1-th key), if <= upper
--   update_after / update_first ($1, $2)       -> UPDATE the token of the rows in the range (NULL without column):
--                                                  SET p_set (token_value()'s assignments), else a new uuid
--   quantiles      ($2 upper, $3 fractions, $4 sample percent) -> the key quantiles of a block sample, one row
--                                                 each, in key order
-- ORDER BY names the key through the table alias: a bare name would sort by an output column.
-- p_set is the SET list that token_value() built from the format (quoted identifiers and checked functions
-- only; it never holds a value given by the caller); NULL keeps the plain `token = gen_random_uuid()`.
--   SELECT * FROM token_rotation.key_range_sql('public.tickets', '{id}', 'token');
CREATE OR REPLACE FUNCTION token_rotation.key_range_sql(
      p_table         regclass
    , p_key           name[]
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
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_target text;
    v_from   text;   -- the relation as FROM names it: ONLY for a plain table, the parent for a partitioned one
    v_cols   text[]; -- t.a, t.b
    v_bare   text[]; -- a, b (UPDATE has no alias)
    v_types  text[];
    v_value  text;   -- ARRAY[t.a::text, t.b::text]
    v_order  text;
    v_desc   text;
    v_set    text;   -- the SET list: p_set, or the token to a new uuid
BEGIN
    SELECT format('%I.%I', n.nspname, c.relname), CASE WHEN c.relkind = 'p' THEN '' ELSE 'ONLY ' END
      INTO v_target, v_from
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table;
    v_from := v_from || v_target;
    SELECT array_agg(format('t.%I', k.name) ORDER BY k.ord), array_agg(format('%I', k.name) ORDER BY k.ord),
           array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord)  -- char(6) must not cast to char(1)
      INTO v_cols, v_bare, v_types
      FROM unnest(p_key) WITH ORDINALITY AS k(name, ord)
      JOIN pg_attribute a ON a.attrelid = p_table AND a.attname = k.name AND a.attnum > 0 AND NOT a.attisdropped;
    v_value := format('ARRAY[%s]', (SELECT string_agg(c || '::text', ', ') FROM unnest(v_cols) AS c));
    v_order := array_to_string(v_cols, ', ');
    v_desc := (SELECT string_agg(c || ' DESC', ', ') FROM unnest(v_cols) AS c);

    first_last := format('SELECT (SELECT %1$s FROM %2$s AS t ORDER BY %3$s LIMIT 1), '
                         '(SELECT %1$s FROM %2$s AS t ORDER BY %4$s LIMIT 1)', v_value, v_from, v_order, v_desc);
    count_upto := format('SELECT count(*) FROM %s AS t WHERE %s', v_from,
                         token_rotation.key_compare(v_cols, v_types, '<=', 2));
    end_after := format('SELECT %s FROM %s AS t WHERE %s AND %s ORDER BY %s OFFSET $3 LIMIT 1', v_value, v_from,
                        token_rotation.key_compare(v_cols, v_types, '>', 1),
                        token_rotation.key_compare(v_cols, v_types, '<=', 2), v_order);
    end_first := format('SELECT %s FROM %s AS t WHERE %s ORDER BY %s OFFSET $3 LIMIT 1', v_value, v_from,
                        token_rotation.key_compare(v_cols, v_types, '<=', 2), v_order);
    IF p_column IS NOT NULL THEN
        v_set := coalesce(p_set, format('%I = pg_catalog.gen_random_uuid()', p_column));
        update_after := format('UPDATE %1$s SET %2$s WHERE %3$s AND %4$s',
                               v_from, v_set, token_rotation.key_compare(v_bare, v_types, '>', 1),
                               token_rotation.key_compare(v_bare, v_types, '<=', 2));
        update_first := format('UPDATE %1$s SET %2$s WHERE %3$s',
                               v_from, v_set, token_rotation.key_compare(v_bare, v_types, '<=', 2));
    END IF;
    -- the key at rank ceil(f * n) of the sample for each fraction f: percentile_disc's choice, for a row key
    quantiles := format('SELECT s.k FROM (SELECT %1$s AS k, row_number() OVER (ORDER BY %2$s) AS rn, '
                        'count(*) OVER () AS n FROM %3$s AS t TABLESAMPLE SYSTEM ($4::float4) WHERE %4$s) AS s '
                        'WHERE s.rn = ANY (SELECT greatest(ceil(f * s.n), 1)::bigint FROM unnest($3::float8[]) AS f) '
                        'ORDER BY s.rn', v_value, v_order, v_from,
                        token_rotation.key_compare(v_cols, v_types, '<=', 2));
END
$$;

COMMENT ON FUNCTION token_rotation.key_range_sql(regclass, name[], name, text) IS
    'The statements over key ranges (after, upper] of a table (single or composite key, partitioned or not): '
    'first/last key, count, batch ends, UPDATE, quantiles.';
