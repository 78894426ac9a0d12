-- token_rotation_internal.citus_census(run): this node's runs of shards of a coordinator's run (the tag p_citus less its
-- shard: {"run", "started"}), as JSON text for the coordinator's master_run_on_worker(): shardid, node_run_id,
-- rows_done, state, busy (a session works on it now: another CALL of the coordinator's, or of a DBA's).
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_census(
      p_run jsonb
)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(json_agg(json_build_object('shardid', (r.options->'citus'->>'shard')::bigint,
                                               'node_run_id', r.run_id, 'rows_done', r.rows_done,
                                               'state', r.state, 'busy', EXISTS (
                                                   SELECT FROM token_rotation.slices sl
                                                    WHERE sl.run_id = r.run_id AND NOT sl.done
                                                      AND token_rotation_internal.slice_holder(sl.slice_id) IS NOT NULL))
                                   ORDER BY r.run_id)::text, '[]')
      FROM token_rotation.runs r
     WHERE (r.options->'citus') - 'shard' = p_run
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_census(jsonb) IS
    'This node''s runs of the shards of a coordinator''s run, as JSON text: shardid, node_run_id, rows_done, state.';
