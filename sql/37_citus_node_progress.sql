-- token_rotation_internal.citus_node_progress(run): on a node, the live rows done (progress view) of its runs of the
-- shards of a coordinator's run (the tag less its shard), and the longest working time of those still open
-- (the shards of the wave in progress), as JSON text.
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_node_progress(
      p_run jsonb
)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT json_build_object(
               'rows_done', coalesce(sum(p.rows_done) FILTER (WHERE p.state <> 'cancelled'), 0),
               'open_seconds', coalesce(max(extract(epoch FROM p.elapsed)) FILTER (WHERE p.state IN ('active', 'paused')),
                                        0))::text
      FROM token_rotation.progress p
     WHERE (p.options->'citus') - 'shard' = p_run
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_node_progress(jsonb) IS
    'This node''s live rows done and longest open working time of the shards of a coordinator''s run (JSON text).';
