-- token_rotation_internal.citus_retire(shard, citus): on a worker, before a shard's CALL: an open run of the shard
-- tagged with another coordinator run (one that was cancelled, or lost) is over: it is cancelled, so that this
-- run gives the shard a run of its own (rotating every row again, as a new run does): set_run_state(), as
-- cancel() does, for a role that may rotate the shard (its authorize_run()).
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_retire(
      p_shard regclass
    , p_citus jsonb
)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run_id bigint;
BEGIN
    SELECT r.run_id INTO v_run_id FROM token_rotation.runs r
     WHERE r.target = p_shard AND r.state IN ('active', 'paused') AND r.options ? 'citus'
       AND (r.options->'citus') - 'shard' IS DISTINCT FROM p_citus - 'shard';
    IF v_run_id IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN token_rotation_internal.set_run_state(p_shard, 'cancelled');  -- the table's one open run: v_run_id
END
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_retire(regclass, jsonb) IS
    'Cancels a shard''s open run tagged with another coordinator run, before this run gives the shard its own.';
