-- token_rotation_internal.key_range_sql(table, key, column): every statement that reads or rotates a table by ranges
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
-- Keys are walked with their own operators (the statements run under the caller's search_path, where the
-- table's triggers need it, and an operator found by name there may be another type's: a citext key whose
-- extension is off the path compares as text while its rows are ordered as citext): for each key column, the
-- btree operator class and collation of an index on it (the one whose leading columns are the key in order,
-- else the primary key, a unique index, any b-tree), else the type's default btree class; its operators
-- (strategies 1..5 of the class's family for its input type) schema-qualified, OPERATOR(schema.<), in every
-- comparison (key_compare()) and in every ORDER BY (USING), and its collation as a COLLATE clause on the
-- column in both, so that order and compare agree. Where the operators are not pg_catalog's and the column's
-- type is not their input type (a domain over citext), the column and the bound are cast to it, so that only
-- the exact operator matches. Casts and functions are schema-qualified too.
-- p_filter (run_filter(): a subset, an age, NULL tokens left alone) is ANDed to every statement, so that the
-- batches, the counts and the slices are over the matching rows only and each batch judges a row as it is
-- then; an index that serves it and the key (e.g. (tenant_id, id) for tenant_id = 42) lets a run over a subset
-- cost in proportion to the subset.
-- p_set is the SET list that token_value() built from the format (quoted identifiers and checked functions
-- only; it never holds a value given by the caller); NULL keeps the plain `token = gen_random_uuid()`.
--   SELECT * FROM token_rotation_internal.key_range_sql('public.tickets', '{id}', 'token');
CREATE OR REPLACE FUNCTION token_rotation_internal.key_range_sql(
      p_table         regclass
    , p_key           name[]
    , p_column        name DEFAULT NULL
    , p_set           text DEFAULT NULL
    , p_filter        text DEFAULT NULL
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
    v_cols   text[]; -- t.a COLLATE ..., t.b (as compared and ordered)
    v_bare   text[]; -- a, b (UPDATE has no alias)
    v_casts  text[]; -- what reads a bound back: the column's full type (char(6), not char(1)), maybe ::opcintype
    v_ops    text[]; -- n x 5: OPERATOR(schema.op) for the btree strategies 1..5 of each column
    v_value  text;   -- ARRAY[t.a::pg_catalog.text, t.b::pg_catalog.text]
    v_order  text;
    v_desc   text;
    v_set    text;   -- the SET list: p_set, or the token to a new uuid
    v_key    record;
    v_attnums smallint[];
    v_and     text := coalesce(' AND ' || p_filter, '');    -- the run's filter (run_filter()), if any
    v_where   text := coalesce(' WHERE ' || p_filter, '');
BEGIN
    SELECT format('%I.%I', n.nspname, c.relname), CASE WHEN c.relkind = 'p' THEN '' ELSE 'ONLY ' END
      INTO v_target, v_from
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table;
    v_from := v_from || v_target;
    SELECT array_agg(a.attnum ORDER BY k.ord) INTO v_attnums
      FROM unnest(p_key) WITH ORDINALITY AS k(name, ord)
      JOIN pg_attribute a ON a.attrelid = p_table AND a.attname = k.name AND a.attnum > 0 AND NOT a.attisdropped;
    v_cols := '{}';
    v_bare := '{}';
    v_casts := '{}';
    v_ops := '{}';
    FOR v_key IN
        SELECT k.ord, k.name, a.atttypid, format_type(a.atttypid, a.atttypmod) AS full_type, c.family, c.intype,
               c.collation, (SELECT array_agg(format('OPERATOR(%I.%s)', n.nspname, o.oprname) ORDER BY s.s)
                               FROM generate_series(1, 5) AS s(s)
                               JOIN pg_amop m ON m.amopfamily = c.family AND m.amoplefttype = c.intype
                                             AND m.amoprighttype = c.intype AND m.amopstrategy = s.s
                                             AND m.amopmethod = (SELECT oid FROM pg_am WHERE amname = 'btree')
                               JOIN pg_operator o ON o.oid = m.amopopr
                               JOIN pg_namespace n ON n.oid = o.oprnamespace) AS ops,
               (SELECT bool_and(o.oprnamespace = 'pg_catalog'::regnamespace)
                  FROM pg_amop m JOIN pg_operator o ON o.oid = m.amopopr
                 WHERE m.amopfamily = c.family AND m.amoplefttype = c.intype AND m.amoprighttype = c.intype
                   AND m.amopstrategy BETWEEN 1 AND 5) AS catalog_ops
          FROM unnest(p_key) WITH ORDINALITY AS k(name, ord)
          JOIN pg_attribute a ON a.attrelid = p_table AND a.attname = k.name AND a.attnum > 0 AND NOT a.attisdropped
          JOIN pg_type t ON t.oid = a.atttypid
          LEFT JOIN LATERAL (
                -- an index's class and collation for the column: the index on the key in order first
                SELECT oc.opcfamily AS family, oc.opcintype AS intype, i.indcollation[j.j] AS collation
                  FROM pg_index i
                  JOIN pg_class ic ON ic.oid = i.indexrelid
                  JOIN pg_am am ON am.oid = ic.relam AND am.amname = 'btree'
                 CROSS JOIN generate_series(0, i.indnkeyatts - 1) AS j(j)
                  JOIN pg_opclass oc ON oc.oid = i.indclass[j.j]
                 WHERE i.indrelid = p_table AND i.indkey[j.j] = a.attnum
                 ORDER BY (SELECT array_agg(i.indkey[g] ORDER BY g)
                             FROM generate_series(0, least(i.indnkeyatts, cardinality(v_attnums)) - 1) AS g)
                          = v_attnums DESC,
                          i.indisprimary DESC, i.indisunique DESC, i.indisvalid DESC, j.j, i.indexrelid
                 LIMIT 1
          ) AS x ON true
          LEFT JOIN LATERAL (
                -- else the default btree class of the column's type (of its base type for a domain), or of a
                -- type it is binary-coercible to (varchar: text)
                SELECT oc.opcfamily AS family, oc.opcintype AS intype, a.attcollation AS collation
                  FROM pg_opclass oc
                  JOIN pg_am am ON am.oid = oc.opcmethod AND am.amname = 'btree'
                 WHERE x.family IS NULL AND oc.opcdefault
                   AND (oc.opcintype = coalesce(nullif(t.typbasetype, 0), a.atttypid)
                        OR EXISTS (SELECT FROM pg_cast ca
                                    WHERE ca.castsource = coalesce(nullif(t.typbasetype, 0), a.atttypid)
                                      AND ca.casttarget = oc.opcintype AND ca.castmethod = 'b'
                                      AND ca.castcontext = 'i'))
                 ORDER BY oc.opcintype = coalesce(nullif(t.typbasetype, 0), a.atttypid) DESC, oc.oid
                 LIMIT 1
          ) AS d ON true
         CROSS JOIN LATERAL (SELECT coalesce(x.family, d.family) AS family, coalesce(x.intype, d.intype) AS intype,
                                    coalesce(x.collation, d.collation) AS collation) AS c
         ORDER BY k.ord
    LOOP
        IF cardinality(v_key.ops) IS DISTINCT FROM 5 THEN
            RAISE EXCEPTION 'key column % of % has no btree order', quote_ident(v_key.name), v_target
                USING ERRCODE = 'feature_not_supported',
                      DETAIL = format('type %s: no b-tree operator class of an index on the column, nor a default '
                                      'one of the type, gives its five comparison operators', v_key.full_type),
                      HINT = format('CREATE INDEX ON %s (%I), or pass other key columns with p_key', v_target,
                                    v_key.name);
        END IF;
        v_casts := v_casts || (v_key.full_type
                               || CASE WHEN NOT v_key.catalog_ops AND v_key.atttypid <> v_key.intype
                                            AND (SELECT typtype FROM pg_type WHERE oid = v_key.intype) <> 'p'
                                       THEN '::' || format_type(v_key.intype, NULL) ELSE '' END);
        v_bare := v_bare || (format('%I', v_key.name)
                             || CASE WHEN NOT v_key.catalog_ops AND v_key.atttypid <> v_key.intype
                                          AND (SELECT typtype FROM pg_type WHERE oid = v_key.intype) <> 'p'
                                     THEN '::' || format_type(v_key.intype, NULL) ELSE '' END
                             || coalesce((SELECT format(' COLLATE %I.%I', n.nspname, co.collname)
                                            FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace
                                           WHERE co.oid = v_key.collation), ''));
        v_cols := v_cols || ('t.' || v_bare[v_key.ord::integer]);
        v_ops := v_ops || ARRAY[v_key.ops];
    END LOOP;
    v_value := format('ARRAY[%s]', (SELECT string_agg(format('t.%I::pg_catalog.text', k), ', ' ORDER BY o)
                                      FROM unnest(p_key) WITH ORDINALITY AS u(k, o)));
    v_order := (SELECT string_agg(format('%s USING %s', v_cols[i], v_ops[i][1]), ', ' ORDER BY i)
                  FROM generate_series(1, cardinality(v_cols)) AS i);
    v_desc := (SELECT string_agg(format('%s USING %s', v_cols[i], v_ops[i][5]), ', ' ORDER BY i)
                 FROM generate_series(1, cardinality(v_cols)) AS i);

    first_last := format('SELECT (SELECT %1$s FROM %2$s AS t%5$s ORDER BY %3$s LIMIT 1), '
                         '(SELECT %1$s FROM %2$s AS t%5$s ORDER BY %4$s LIMIT 1)', v_value, v_from, v_order, v_desc,
                         v_where);
    count_upto := format('SELECT pg_catalog.count(*) FROM %s AS t WHERE %s%s', v_from,
                         token_rotation_internal.key_compare(v_cols, v_casts, v_ops, '<=', 2), v_and);
    end_after := format('SELECT %s FROM %s AS t WHERE %s AND %s%s ORDER BY %s OFFSET $3 LIMIT 1', v_value, v_from,
                        token_rotation_internal.key_compare(v_cols, v_casts, v_ops, '>', 1),
                        token_rotation_internal.key_compare(v_cols, v_casts, v_ops, '<=', 2), v_and, v_order);
    end_first := format('SELECT %s FROM %s AS t WHERE %s%s ORDER BY %s OFFSET $3 LIMIT 1', v_value, v_from,
                        token_rotation_internal.key_compare(v_cols, v_casts, v_ops, '<=', 2), v_and, v_order);
    IF p_column IS NOT NULL THEN
        v_set := coalesce(p_set, format('%I = pg_catalog.gen_random_uuid()', p_column));
        update_after := format('UPDATE %1$s SET %2$s WHERE %3$s AND %4$s%5$s',
                               v_from, v_set, token_rotation_internal.key_compare(v_bare, v_casts, v_ops, '>', 1),
                               token_rotation_internal.key_compare(v_bare, v_casts, v_ops, '<=', 2), v_and);
        update_first := format('UPDATE %1$s SET %2$s WHERE %3$s%4$s',
                               v_from, v_set, token_rotation_internal.key_compare(v_bare, v_casts, v_ops, '<=', 2), v_and);
    END IF;
    -- the key at rank ceil(f * n) of the sample for each fraction f: percentile_disc's choice, for a row key
    quantiles := format('SELECT s.k FROM (SELECT %1$s AS k, pg_catalog.row_number() OVER (ORDER BY %2$s) AS rn, '
                        'pg_catalog.count(*) OVER () AS n FROM %3$s AS t TABLESAMPLE pg_catalog.system '
                        '($4::pg_catalog.float4) WHERE %4$s%5$s) AS s '
                        'WHERE s.rn OPERATOR(pg_catalog.=) ANY (SELECT greatest(pg_catalog.ceil(f OPERATOR(pg_catalog.*) s.n), 1)'
                        '::pg_catalog.int8 FROM pg_catalog.unnest($3::pg_catalog.float8[]) AS f) '
                        'ORDER BY s.rn', v_value, v_order, v_from,
                        token_rotation_internal.key_compare(v_cols, v_casts, v_ops, '<=', 2), v_and);
END
$$;

COMMENT ON FUNCTION token_rotation_internal.key_range_sql(regclass, name[], name, text, text) IS
    'The statements over key ranges (after, upper] of a table (single or composite key, partitioned or not): '
    'first/last key, count, batch ends, UPDATE, quantiles.';
