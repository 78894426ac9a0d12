-- token_rotation_internal.citus_shard_call(table, options, key, citus): the CALL that rotates one shard on its node,
-- with every option of the coordinator's run spelled out (so that a shard started at a resume gets the
-- run's, not the defaults), quiet, one session, tagged with p_citus.
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_shard_call(
      p_shard         text
    , p_options       jsonb
    , p_key           name[]
    , p_max_batches   integer
    , p_trust_owner   boolean
    , p_stop_at       timestamptz
    , p_citus         jsonb
)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.format(
        'CALL token_rotation.rotate(%L, p_column => %L, p_batch_size => %L, p_max_batches => %L, p_sleep => %L, '
        'p_lock_timeout => %L, p_lock_retries => %L, p_quiet => true, p_workers => 1, p_target_batch_time => %L, '
        'p_max_replication_lag => %L, p_synchronous_commit => %L, p_format => %L, p_prefix => %L, '
        'p_previous_column => %L, p_rotated_at_column => %L, p_key => %L, p_max_replay_lag => %L, '
        'p_max_archive_queue => %L, p_pause_on_autovacuum => %L, p_trust_table_owner => %L, p_where => %L, '
        'p_fill_null => %L, p_older_than => %L, p_stop_at => %L, p_citus => %L)',
        p_shard, p_options->>'column', p_options->>'batch_size', p_max_batches, p_options->>'sleep',
        p_options->>'lock_timeout', p_options->>'lock_retries', p_options->>'target_batch_time',
        p_options->>'max_replication_lag', p_options->>'synchronous_commit', p_options->>'format',
        p_options->>'prefix', p_options->>'previous_column', p_options->>'rotated_at_column', p_key,
        p_options->>'max_replay_lag', p_options->>'max_archive_queue', p_options->>'pause_on_autovacuum',
        coalesce(p_trust_owner, false), p_options->>'where', p_options->>'fill_null', p_options->>'older_than',
        p_stop_at, p_citus)
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_shard_call(text, jsonb, name[], integer, boolean, timestamptz, jsonb) IS
    'The CALL of rotate() that rotates one shard of a distributed table on its node, every option spelled out.';
