-- token_rotation_internal.citus_node_verify(run): on a node, verify() of each of its runs of shards of a coordinator's
-- run (the tag less its shard), as JSON text: shardid, node_run_id, state, rows_done, the names of its failed
-- checks.
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_node_verify(
      p_run jsonb
)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(json_agg(json_build_object(
               'shardid', (r.options->'citus'->>'shard')::bigint, 'node_run_id', r.run_id, 'state', r.state,
               'rows_done', r.rows_done,
               'failed', (SELECT coalesce(json_agg(v.check_name), '[]') FROM token_rotation.verify(r.run_id) AS v
                           WHERE NOT v.ok))
           ORDER BY r.run_id)::text, '[]')
      FROM token_rotation.runs r
     WHERE (r.options->'citus') - 'shard' = p_run
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_node_verify(jsonb) IS
    'verify() of this node''s runs of the shards of a coordinator''s run, as JSON text.';
