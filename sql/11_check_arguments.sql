-- token_rotation.check_arguments(...): refuses the out-of-range or null arguments of rotate() and plan()
-- (plan() passes the ones it shares), against the bounds in limits(), with the same errors for both:
-- 22023 invalid_parameter_value or 22004 null_value_not_allowed, the value in DETAIL, the next step in HINT.
-- The table and column are checked by describe_target().
--   SELECT token_rotation.check_arguments(p_batch_size => 3000, p_workers => 2);
CREATE OR REPLACE FUNCTION token_rotation.check_arguments(
      p_batch_size          integer
    , p_workers             integer
    , p_max_batches         integer  DEFAULT NULL
    , p_sleep               interval DEFAULT '0'
    , p_lock_timeout        interval DEFAULT '1s'
    , p_lock_retries        integer  DEFAULT 5
    , p_quiet               boolean  DEFAULT false
    , p_target_batch_time   interval DEFAULT NULL
    , p_max_replication_lag bigint   DEFAULT NULL
    , p_synchronous_commit  boolean  DEFAULT false
)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limits record;
BEGIN
    SELECT * INTO v_limits FROM token_rotation.limits();
    IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > v_limits.max_batch_size THEN
        RAISE EXCEPTION 'batch size must be between 1 and %', v_limits.max_batch_size
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_batch_size is %s', p_batch_size),
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
    IF p_sleep IS NULL OR p_sleep < '0' OR p_lock_timeout IS NULL OR p_lock_timeout < '0'
       OR p_lock_retries IS NULL OR p_lock_retries < 0 THEN
        RAISE EXCEPTION 'sleep, lock timeout and lock retries must not be negative'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('p_sleep is %s, p_lock_timeout is %s, p_lock_retries is %s',
                                  p_sleep, p_lock_timeout, p_lock_retries),
                  HINT = 'the defaults are 0, 1s and 5';
    END IF;
    IF p_target_batch_time IS NOT NULL AND p_target_batch_time <= '0' THEN
        RAISE EXCEPTION 'target batch time must be positive'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_target_batch_time is %s', p_target_batch_time),
                  HINT = 'pass NULL for a fixed batch size';
    END IF;
    IF p_max_replication_lag IS NOT NULL AND p_max_replication_lag < 0 THEN
        RAISE EXCEPTION 'max replication lag must not be negative'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_max_replication_lag is %s', p_max_replication_lag),
                  HINT = 'pass it in bytes, or NULL not to watch replicas';
    END IF;
    IF p_quiet IS NULL OR p_synchronous_commit IS NULL THEN
        RAISE EXCEPTION 'p_quiet and p_synchronous_commit must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'pass true or false';
    END IF;
END
$$;

COMMENT ON FUNCTION token_rotation.check_arguments(integer, integer, integer, interval, interval, integer, boolean,
                                                   interval, bigint, boolean) IS
    'Refuses out-of-range or null arguments of rotate() and plan() (bounds from limits()); raises 22023 or 22004.';
