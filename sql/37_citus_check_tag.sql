-- token_rotation_internal.citus_check_tag(table, citus): raises unless the table is the shard the tag names, on this
-- node (pg_dist_shard, which Citus keeps on every node): a tag is what the coordinator's census and verify() trust,
-- so a role may only tag runs of a shard of a distributed table it may rotate, never of a table of its own.
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_check_tag(
      p_table regclass
    , p_citus jsonb
)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_shard regclass;
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_shard') IS NOT NULL
       AND jsonb_typeof(p_citus->'shard') = 'number' AND jsonb_typeof(p_citus->'run') = 'number' THEN
        -- shard_name() leaves out the schema public only
        EXECUTE pg_catalog.format('SELECT pg_catalog.to_regclass(CASE WHEN n.nspname = ''public'' THEN ''public.''
                                                                     ELSE '''' END || %s(s.logicalrelid, s.shardid))
                                     FROM pg_catalog.pg_dist_shard s
                                     JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid
                                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                                    WHERE s.shardid = $1', 'pg_catalog.shard_name')
           INTO v_shard USING (p_citus->>'shard')::bigint;
    END IF;
    IF v_shard IS DISTINCT FROM p_table THEN
        RAISE EXCEPTION 'p_citus does not name % on this node', p_table
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('p_citus is %s', p_citus),
                  HINT = 'p_citus is set by the coordinator''s rotate() of a distributed table: leave it out';
    END IF;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_check_tag(regclass, jsonb) IS
    'Raises unless the table is, on this node, the Citus shard that a p_citus tag names.';
