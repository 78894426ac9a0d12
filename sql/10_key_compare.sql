-- token_rotation_internal.key_compare(columns, casts, operators, operator, parameter): the condition "key <op> $n" of
-- key_range_sql(), for a key bound as a text[] parameter, with the key's own btree operators (those of its
-- index's operator family, key_range_sql() finds them), so that rows compare as they are ordered:
--   one column:   t.id OPERATOR(pg_catalog.<=) $2[1]::bigint
--   several, every operator the plain pg_catalog one: a row comparison, which a b-tree on the columns in that
--                 order serves as one index condition:
--                 ROW(t.id, t.created_at) OPERATOR(pg_catalog.<=) ROW($2[1]::bigint, $2[2]::timestamp with time zone)
--   several, any column with other operators (citext's, text_pattern_ops' ~<~, ...): a row comparison would
--                 resolve each column's operator by name, so the same condition is spelled out with the
--                 explicit operators, led by its first column's non-strict bound for the index:
--                 a >= x AND (a > x OR (a = x AND b > y))
-- p_columns come quoted (format('%I')), with their COLLATE clause and a cast when key_range_sql() adds one;
-- p_casts are what follows `$n[i]::` (schema-qualified types, format_type() under pg_catalog, pg_temp);
-- p_operators is an n x 5 array, one row per column of `OPERATOR(schema.op)` for the btree strategies
-- 1..5 (< <= = >= >); p_operator is one of < <= > >=.
--   SELECT token_rotation_internal.key_compare('{t.id}', '{bigint}',
--       '{{OPERATOR(pg_catalog.<),OPERATOR(pg_catalog.<=),OPERATOR(pg_catalog.=),OPERATOR(pg_catalog.>=),OPERATOR(pg_catalog.>)}}',
--       '>', 1);
CREATE OR REPLACE FUNCTION token_rotation_internal.key_compare(
      p_columns   text[]
    , p_casts     text[]
    , p_operators text[]
    , p_operator  text
    , p_parameter integer
)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_plain    CONSTANT text[] := ARRAY['OPERATOR(pg_catalog.<)', 'OPERATOR(pg_catalog.<=)', 'OPERATOR(pg_catalog.=)',
                                        'OPERATOR(pg_catalog.>=)', 'OPERATOR(pg_catalog.>)'];
    v_n        integer := cardinality(p_columns);
    v_strategy integer;  -- btree strategy of p_operator: 1 <, 2 <=, 4 >=, 5 >
    v_strict   integer;  -- its strict form (< or >), for the columns before the last
    v_loose    integer;  -- its non-strict form (<= or >=), for the leading column's index bound
    v_values   text[];
    v_cond     text;
BEGIN
    v_strategy := CASE p_operator WHEN '<' THEN 1 WHEN '<=' THEN 2 WHEN '>=' THEN 4 WHEN '>' THEN 5 END;
    IF v_strategy IS NULL OR v_n IS NULL OR v_n < 1 OR array_length(p_operators, 1) <> v_n
       OR array_length(p_operators, 2) <> 5 OR cardinality(p_casts) <> v_n THEN
        RAISE EXCEPTION 'key comparison % over % column(s) is not supported', p_operator, v_n
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('p_columns %s, p_casts %s, p_operators %s', p_columns, p_casts, p_operators),
                  HINT = 'key_compare() takes one of < <= > >= and an n x 5 array of operators (key_range_sql())';
    END IF;
    v_strict := CASE WHEN v_strategy < 3 THEN 1 ELSE 5 END;
    v_loose := CASE WHEN v_strategy < 3 THEN 2 ELSE 4 END;
    SELECT array_agg(format('$%s[%s]::%s', p_parameter, i, p_casts[i]) ORDER BY i) INTO v_values
      FROM generate_series(1, v_n) AS i;

    IF v_n = 1 THEN
        RETURN format('%s %s %s', p_columns[1], p_operators[1][v_strategy], v_values[1]);
    END IF;
    IF NOT EXISTS (SELECT FROM generate_series(1, v_n) AS i WHERE p_operators[i:i][1:5] <> ARRAY[v_plain]) THEN
        RETURN format('ROW(%s) %s ROW(%s)', array_to_string(p_columns, ', '), v_plain[v_strategy],
                      array_to_string(v_values, ', '));
    END IF;
    -- spelled out from the last column inwards: c_n op v_n, then c_i strict v_i OR (c_i = v_i AND (...))
    v_cond := format('%s %s %s', p_columns[v_n], p_operators[v_n][v_strategy], v_values[v_n]);
    FOR i IN REVERSE v_n - 1 .. 1 LOOP
        v_cond := format('%1$s %2$s %3$s OR (%1$s %4$s %3$s AND (%5$s))', p_columns[i], p_operators[i][v_strict],
                         v_values[i], p_operators[i][3], v_cond);
    END LOOP;
    RETURN format('(%1$s %2$s %3$s AND (%4$s))', p_columns[1], p_operators[1][v_loose], v_values[1], v_cond);
END
$$;

COMMENT ON FUNCTION token_rotation_internal.key_compare(text[], text[], text[], text, integer) IS
    'The condition "key <op> $n" over a key bound as text[], with the key''s own btree operators: plain for one '
    'column, a row comparison for several plain pg_catalog ones, else spelled out.';
