-- token_rotation_internal.check_arguments(options, workers, max_batches, quiet, key): refuses the out-of-range or null
-- arguments of rotate(), set_options() and plan() (p_options: default_options() overlaid by the options given,
-- as run_options() builds them), against the bounds in limits() and option_limits(), with the same errors for
-- all three, before anything is stored: 22023 invalid_parameter_value or 22004 null_value_not_allowed, the
-- value in DETAIL, the next step in HINT. With p_key (the key the run walks, as describe_target() resolved
-- it), also refuses a key that contains a column the run writes: the token, previous-token or rotated-at
-- column (a batch would move rows along the key it walks: some rotated twice, their grace tokens lost).
-- The table and column are checked by describe_target().
--   SELECT token_rotation_internal.check_arguments(token_rotation.default_options() || '{"batch_size": 5000}', 2);
CREATE OR REPLACE FUNCTION token_rotation_internal.check_arguments(
      p_options     jsonb
    , p_workers     integer DEFAULT 1
    , p_max_batches integer DEFAULT NULL
    , p_quiet       boolean DEFAULT false
    , p_key         name[]  DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limits record;
    v_bounds record;  -- option_limits()
    v        record;  -- option_values(p_options)
    v_bad    text;
BEGIN
    SELECT * INTO v_limits FROM token_rotation_internal.limits();
    SELECT * INTO v_bounds FROM token_rotation_internal.option_limits();
    SELECT * INTO v FROM token_rotation_internal.option_values(p_options);
    IF v.batch_size IS NULL OR v.batch_size < 1 OR v.batch_size > v_limits.max_batch_size THEN
        RAISE EXCEPTION 'batch size must be between 1 and %', v_limits.max_batch_size
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_batch_size is %s', v.batch_size),
                  HINT = 'the default 3000 suits most tables; larger batches hold row locks longer';
    END IF;
    IF p_workers IS NULL OR p_workers < 1 OR p_workers > v_limits.max_workers THEN
        RAISE EXCEPTION 'workers must be between 1 and %', v_limits.max_workers
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_workers is %s', p_workers),
                  HINT = 'use at most one worker per core of the server';
    END IF;
    IF p_max_batches IS NOT NULL AND p_max_batches < 1 THEN
        RAISE EXCEPTION 'max batches must be at least 1'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_max_batches is %s', p_max_batches),
                  HINT = 'pass NULL (the default) to run to the end';
    END IF;
    IF v.sleep IS NULL OR v.sleep < '0' OR v.lock_timeout IS NULL OR v.lock_timeout < '0'
       OR v.lock_retries IS NULL OR v.lock_retries < 0 THEN
        RAISE EXCEPTION 'sleep, lock timeout and lock retries must not be negative'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('p_sleep is %s, p_lock_timeout is %s, p_lock_retries is %s',
                                  v.sleep, v.lock_timeout, v.lock_retries),
                  HINT = 'the defaults are 0, 1s and 5';
    END IF;
    IF v.lock_timeout < v_bounds.min_lock_timeout OR v.lock_timeout > v_bounds.max_lock_timeout THEN
        RAISE EXCEPTION 'lock timeout must be between % and %', v_bounds.min_lock_timeout, v_bounds.max_lock_timeout
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('p_lock_timeout is %s: lock_timeout counts whole milliseconds up to %s, and 0 '
                                  'would wait for ever', v.lock_timeout, v_bounds.max_lock_timeout),
                  HINT = 'the default 1s suits most tables; a lock held longer is better waited out with p_lock_retries';
    END IF;
    IF v.sleep > v_bounds.max_sleep THEN
        RAISE EXCEPTION 'sleep must be at most %', v_bounds.max_sleep
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_sleep is %s', v.sleep),
                  HINT = 'to stop a run for longer, pause it: SELECT token_rotation.pause(''<table>'')';
    END IF;
    IF v.target_batch_time IS NOT NULL
       AND (v.target_batch_time <= '0' OR v.target_batch_time > v_bounds.max_target_batch_time) THEN
        RAISE EXCEPTION 'target batch time must be positive and at most %', v_bounds.max_target_batch_time
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_target_batch_time is %s', v.target_batch_time),
                  HINT = 'a batch holds its row locks that long: 10ms suits most tables; NULL for a fixed batch size';
    END IF;
    IF v.max_replication_lag IS NOT NULL AND v.max_replication_lag < 0 THEN
        RAISE EXCEPTION 'max replication lag must not be negative'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_max_replication_lag is %s', v.max_replication_lag),
                  HINT = 'pass it in bytes, or NULL not to watch replicas';
    END IF;
    IF v.max_replay_lag IS NOT NULL AND (v.max_replay_lag < '0' OR v.max_replay_lag > v_bounds.max_replay_lag) THEN
        RAISE EXCEPTION 'max replay lag must be between 0 and %', v_bounds.max_replay_lag
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_max_replay_lag is %s', v.max_replay_lag),
                  HINT = 'pass an interval such as ''10s'', or NULL not to watch the replay lag';
    END IF;
    IF v.max_archive_queue IS NOT NULL AND v.max_archive_queue < 0 THEN
        RAISE EXCEPTION 'max archive queue must not be negative'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_max_archive_queue is %s', v.max_archive_queue),
                  HINT = 'pass a number of WAL files, or NULL not to watch the archiver';
    END IF;
    IF p_quiet IS NULL OR v.synchronous_commit IS NULL OR v.pause_on_autovacuum IS NULL THEN
        RAISE EXCEPTION 'p_quiet, p_synchronous_commit and p_pause_on_autovacuum must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'pass true or false';
    END IF;
    -- the key the run walks must not be a column its batches write
    SELECT string_agg(format('%s (the %s column)', quote_ident(c.name), c.role), ', ' ORDER BY c.ord) INTO v_bad
      FROM (VALUES (1, p_options->>'column', 'token'), (2, p_options->>'previous_column', 'previous-token'),
                   (3, p_options->>'rotated_at_column', 'rotated-at')) AS c(ord, name, role)
     WHERE c.name::name = ANY (p_key);
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'key % contains %', array_to_string(p_key, ', '), v_bad
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'each batch writes that column, so rows would move along the key the run walks: some '
                           'rotated twice (their previous token lost), others skipped',
                  HINT = 'pass with p_key unique NOT NULL columns that the rotation does not write, e.g. the '
                         'primary key (the default)';
    END IF;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.check_arguments(jsonb, integer, integer, boolean, name[]) IS
    'Refuses out-of-range or null arguments of rotate(), set_options() and plan() (bounds from limits() and '
    'option_limits()), and a key with a column the run writes; raises 22023 or 22004.';
