-- token_rotation_internal.replay_lag(): how far behind in time the slowest replica's replay is (pg_stat_replication's
-- replay_lag: the time between a WAL record's local flush and the replica's report that it replayed it; while
-- replay is stuck it keeps growing, interpolated by the server); 0 when there is no replica or every replica
-- has caught up (the server then shows NULL). A role without pg_read_all_stats (pg_monitor has it) sees the
-- rows with NULL columns: 42501 insufficient_privilege, naming the grant. rotate() waits while this is over
-- p_max_replay_lag.
--   SELECT token_rotation_internal.replay_lag();
CREATE OR REPLACE FUNCTION token_rotation_internal.replay_lag()
RETURNS interval
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_lag    interval;
    v_hidden boolean;
BEGIN
    SELECT max(replay_lag), bool_or(state IS NULL) INTO v_lag, v_hidden FROM pg_stat_replication;
    IF v_hidden THEN
        RAISE EXCEPTION 'role % cannot read the replicas'' lag in pg_stat_replication', current_user
            USING ERRCODE = 'insufficient_privilege', HINT = format('GRANT pg_monitor TO %I', current_user);
    END IF;
    RETURN coalesce(v_lag, '0');
END
$$;

COMMENT ON FUNCTION token_rotation_internal.replay_lag() IS
    'Largest replay_lag over pg_stat_replication (0 without replicas or when caught up); 42501 when the role '
    'cannot read it.';
