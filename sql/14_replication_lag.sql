-- token_rotation_internal.replication_lag(): bytes of WAL that the slowest replica (pg_stat_replication) or active
-- replication slot has not yet replayed or confirmed; 0 when there is none. rotate() waits while this is over
-- p_max_replication_lag, and also while this query fails (it prefers to wait rather than race a replica).
-- A role without pg_read_all_stats (pg_monitor has it) sees the replicas' rows with NULL positions: that is
-- not "no lag", so it raises 42501 insufficient_privilege naming the grant.
--   SELECT pg_size_pretty(token_rotation_internal.replication_lag());
CREATE OR REPLACE FUNCTION token_rotation_internal.replication_lag()
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_lag    bigint;
    v_hidden boolean;
BEGIN
    SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(replay_lsn, flush_lsn, write_lsn, sent_lsn))),
           bool_or(state IS NULL)
      INTO v_lag, v_hidden
      FROM pg_stat_replication;
    IF v_hidden THEN
        RAISE EXCEPTION 'role % cannot read the replicas'' positions in pg_stat_replication', current_user
            USING ERRCODE = 'insufficient_privilege', HINT = format('GRANT pg_monitor TO %I', current_user);
    END IF;
    RETURN greatest(v_lag,
                    (SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(confirmed_flush_lsn, restart_lsn)))
                       FROM pg_replication_slots WHERE active),
                    0);
END
$$;

COMMENT ON FUNCTION token_rotation_internal.replication_lag() IS
    'Largest replication lag in bytes over pg_stat_replication and active slots (0 without replicas); 42501 '
    'when the role cannot read the replicas'' positions.';
