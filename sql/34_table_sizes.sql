-- token_rotation.table_sizes(table): the on-disk size of a table and of its indexes, and its live and dead
-- tuples, for the report after a run: every rotated row leaves a dead tuple and new index entries (an indexed
-- token column makes the updates non-HOT) until VACUUM reclaims them. The driver reads it before and after a
-- run to show the growth, and offers VACUUM (ANALYZE). Tuple counts come from the statistics system, so they
-- lag the last transactions by up to a second or so. For a partitioned table: the sums over its leaf partitions;
-- for a Citus distributed table: the sizes over its shards (citus_sizes()), no tuple counts.
--   SELECT * FROM token_rotation.table_sizes('public.tickets');
CREATE OR REPLACE FUNCTION token_rotation.table_sizes(p_table regclass)
RETURNS TABLE (
      table_bytes      bigint
    , indexes_bytes    bigint
    , total_bytes      bigint
    , live_tuples      bigint
    , dead_tuples      bigint
    , last_vacuum      timestamptz
    , last_autovacuum  timestamptz
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- a partitioned table holds nothing itself: the sums over its leaf partitions
    SELECT sum(pg_relation_size(t.relid))::bigint, sum(pg_indexes_size(t.relid))::bigint,
           sum(pg_total_relation_size(t.relid))::bigint, sum(s.n_live_tup)::bigint, sum(s.n_dead_tup)::bigint,
           max(s.last_vacuum), max(s.last_autovacuum)
      FROM (SELECT p_table WHERE (SELECT c.relkind FROM pg_class c WHERE c.oid = p_table) IS DISTINCT FROM 'p'
            UNION ALL
            SELECT pt.relid FROM pg_partition_tree(p_table) AS pt WHERE pt.isleaf AND pt.relid <> p_table) AS t (relid)
      LEFT JOIN pg_stat_all_tables s ON s.relid = t.relid
    HAVING NOT EXISTS (SELECT FROM token_rotation_internal.citus_shards(p_table))
    UNION ALL
    -- a Citus distributed table: its shards on every node (their tuple counts are the nodes' own)
    SELECT c.table_bytes, c.indexes_bytes, c.total_bytes, NULL, NULL, NULL, NULL
      FROM token_rotation_internal.citus_sizes(p_table) AS c
     WHERE EXISTS (SELECT FROM token_rotation_internal.citus_shards(p_table))
$$;

COMMENT ON FUNCTION token_rotation.table_sizes(regclass) IS
    'Table and index sizes in bytes, live and dead tuples, last vacuum: the growth report after a run.';
