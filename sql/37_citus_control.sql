-- token_rotation_internal.citus_control(run): after pause, unpause, cancel, hold or set_options of a coordinator's run of
-- a distributed table (they call it, as the tool's owner, once they have authorized the caller), sends the run's
-- state, hold and retunable options to every node (citus_follow()), so that the shards' CALLs in progress
-- follow within a batch, not only at the next wave. A node that cannot be reached: a WARNING naming it (the
-- coordinator's next wave follows the run anyway). Nothing for another run.
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_control(
      p_run_id bigint
)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run    token_rotation.runs;
    v_answer record;
BEGIN
    SELECT * INTO v_run FROM token_rotation.runs WHERE run_id = p_run_id;
    IF NOT EXISTS (SELECT FROM token_rotation.shards s WHERE s.run_id = p_run_id) THEN
        RETURN;
    END IF;
    FOR v_answer IN
        SELECT n.node, n.port, n.ok, n.result
          FROM token_rotation_internal.citus_on_nodes(v_run.target, pg_catalog.format(
                   'SELECT token_rotation_internal.citus_follow(%L::jsonb, %L::jsonb)', token_rotation_internal.citus_tag(v_run),
                   jsonb_build_object('state', v_run.state, 'hold_reason', v_run.hold_reason,
                                      'hold_until', v_run.hold_until,
                                      'options', v_run.options - ARRAY['column', 'format', 'prefix', 'previous_column',
                                                                       'rotated_at_column', 'where', 'older_than',
                                                                       'rotated_before', 'fill_null', 'citus']))) AS n
         WHERE NOT n.ok
    LOOP
        RAISE WARNING 'node %:% did not follow run % (its shards follow at the next wave): %', v_answer.node,
                      v_answer.port, p_run_id, token_rotation_internal.redact(v_answer.result);
    END LOOP;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_control(bigint) IS
    'Sends a distributed run''s state, hold and retunable options to its shards'' runs on every node.';
