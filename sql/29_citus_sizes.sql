-- token_rotation_internal.citus_sizes(table): the size of a Citus distributed table over all its shards on every node
-- (its own relation on the coordinator holds no row), for table_sizes(): the heap and TOAST, the indexes, the
-- total.
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_sizes(
      p_table             regclass
    , OUT table_bytes     bigint
    , OUT indexes_bytes   bigint
    , OUT total_bytes     bigint
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE pg_catalog.format('SELECT %1$s($1), %2$s($1) - %1$s($1), %2$s($1)', 'pg_catalog.citus_table_size',
                              'pg_catalog.citus_total_relation_size')
       INTO table_bytes, indexes_bytes, total_bytes USING p_table;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_sizes(regclass) IS
    'Heap, index and total bytes of a Citus distributed table over all its shards.';
