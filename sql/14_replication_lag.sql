-- token_rotation.replication_lag(): bytes of WAL that the slowest replica (pg_stat_replication) or active
-- replication slot has not yet replayed or confirmed; 0 when there is none. rotate() pauses while this is over
-- p_max_replication_lag, and also while this query fails (it prefers to wait rather than race a replica).
--   SELECT pg_size_pretty(token_rotation.replication_lag());
CREATE OR REPLACE FUNCTION token_rotation.replication_lag()
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT greatest(
        (SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(replay_lsn, flush_lsn, write_lsn, sent_lsn)))
           FROM pg_stat_replication),
        (SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(confirmed_flush_lsn, restart_lsn)))
           FROM pg_replication_slots WHERE active),
        0)::bigint
$$;

COMMENT ON FUNCTION token_rotation.replication_lag() IS
    'Largest replication lag in bytes over pg_stat_replication and active slots (0 without replicas).';
