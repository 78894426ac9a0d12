-- token_rotation_internal.citus_follow(run, control): on a node, makes this node's open runs of the shards of a
-- coordinator's run (the tag less its shard) follow its control: its state (paused, active, cancelled), its
-- hold, and the options set_options() may change. Sent by citus_control() as the tool's owner (it writes the
-- tool's tables: no other role can); the shards' CALLs read it before their next batch. Returns how many runs.
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_follow(
      p_run     jsonb
    , p_control jsonb
)
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH followed AS (
        UPDATE token_rotation.runs r
           SET state = CASE WHEN p_control->>'state' = 'cancelled' THEN 'cancelled'
                            WHEN p_control->>'state' IN ('active', 'paused') THEN p_control->>'state'
                            ELSE r.state END,
               state_changed_at = CASE WHEN p_control->>'state' IS DISTINCT FROM r.state THEN clock_timestamp()
                                       ELSE r.state_changed_at END,
               hold_reason = p_control->>'hold_reason',
               hold_until = (p_control->>'hold_until')::timestamptz,
               options = r.options || coalesce(p_control->'options', '{}')
         WHERE (r.options->'citus') - 'shard' = p_run AND r.state IN ('active', 'paused')
        RETURNING 1
    )
    SELECT count(*) FROM followed
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_follow(jsonb, jsonb) IS
    'This node''s open runs of a coordinator''s shards follow its state, hold and retunable options.';
