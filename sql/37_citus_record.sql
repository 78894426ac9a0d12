-- token_rotation_internal.citus_record(run, shards, elapsed, error): books a wave of the coordinator's run: each
-- shard's node, its run there, rows and whether it finished (p_shards: [{shardid, node, port, node_run_id,
-- rows_done, done}]), the wave's time, the error that ended it (redacted); the run finishes when every shard
-- has. Returns the run. As the tool's owner, for a role that may rotate the table (authorize_run()).
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_record(
      p_run_id  bigint
    , p_shards  jsonb
    , p_elapsed interval
    , p_error   text
)
RETURNS token_rotation.runs
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run token_rotation.runs;
BEGIN
    PERFORM token_rotation_internal.authorize_run(p_run_id, NULL, 'record a wave of');
    UPDATE token_rotation.shards s
       SET node = coalesce(e.node, s.node), port = coalesce(e.port, s.port),
           node_run_id = coalesce(e.node_run_id, s.node_run_id), rows_done = coalesce(e.rows_done, s.rows_done),
           done = s.done OR coalesce(e.done, false)
      FROM jsonb_to_recordset(coalesce(p_shards, '[]')) AS e(shardid bigint, node text, port integer,
                                                            node_run_id bigint, rows_done bigint, done boolean)
     WHERE s.run_id = p_run_id AND s.shardid = e.shardid;
    UPDATE token_rotation.runs r
       SET rows_done = t.rows_done, elapsed = r.elapsed + coalesce(p_elapsed, '0'),
           last_error = coalesce(token_rotation_internal.redact(p_error, r.options->>'format', r.options->>'prefix'),
                                 r.last_error),
           last_error_at = CASE WHEN p_error IS NOT NULL THEN clock_timestamp() ELSE r.last_error_at END
      FROM (SELECT coalesce(sum(s.rows_done), 0)::bigint AS rows_done FROM token_rotation.shards s
             WHERE s.run_id = p_run_id) AS t
     WHERE r.run_id = p_run_id
    RETURNING r.* INTO v_run;
    IF v_run.state = 'active'
       AND NOT EXISTS (SELECT FROM token_rotation.shards s WHERE s.run_id = p_run_id AND NOT s.done) THEN
        v_run := token_rotation_internal.finish_run(p_run_id, clock_timestamp());
    END IF;
    RETURN v_run;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_record(bigint, jsonb, interval, text) IS
    'Books a wave of a distributed table''s run: its shards'' nodes, runs, rows and ends; finishes the run.';
