-- token_rotation.key_compare(columns, types, operator, parameter): the condition "key <op> $n" of
-- key_range_sql(), for a key bound as a text[] parameter: `t.id <= $2[1]::bigint` for one column, the row
-- comparison `(t.id, t.created_at) <= ($2[1]::bigint, $2[2]::timestamp with time zone)` for several (a
-- b-tree on the columns in that order serves it as an index condition). The columns come already quoted
-- (format('%I')), the types as regtype text; the operator is one of < <= > >=.
--   SELECT token_rotation.key_compare('{t.id,t.created_at}', '{bigint,timestamptz}', '>', 1);
CREATE OR REPLACE FUNCTION token_rotation.key_compare(
      p_columns   text[]
    , p_types     text[]
    , p_operator  text
    , p_parameter integer
)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN cardinality(p_columns) = 1
                THEN format('%s %s $%s[1]::%s', p_columns[1], o.op, p_parameter, p_types[1])
                ELSE format('(%s) %s (%s)', array_to_string(p_columns, ', '), o.op,
                            (SELECT string_agg(format('$%s[%s]::%s', p_parameter, i, p_types[i]), ', ' ORDER BY i)
                               FROM generate_subscripts(p_columns, 1) AS i)) END
      FROM (SELECT CASE WHEN p_operator IN ('<', '<=', '>', '>=') THEN p_operator END AS op) AS o
$$;

COMMENT ON FUNCTION token_rotation.key_compare(text[], text[], text, integer) IS
    'The condition "key <op> $n" over a key bound as text[]: plain for one column, a row comparison for several.';
