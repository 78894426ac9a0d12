-- token_rotation.throttle_reason(state, lag, max_lag, lag_error): why a worker must wait before its next batch,
-- or NULL when it may go on. A pure function of what rotate() has just read, so that the decision is tested
-- without a replica: 'paused' while the run is paused; 'replica lag 120 MB' while the measured lag exceeds
-- p_max_lag; 'replica lag unknown (SQLSTATE)' when p_max_lag is set but the lag could not be measured (it
-- prefers to wait rather than race a replica it cannot see). rotate() writes the reason into slices.throttled.
--   SELECT token_rotation.throttle_reason('active', 125829120, 67108864, NULL);  -- replica lag 120 MB
CREATE OR REPLACE FUNCTION token_rotation.throttle_reason(
      p_state      text
    , p_lag        bigint
    , p_max_lag    bigint
    , p_lag_error  text DEFAULT NULL
)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_state = 'paused' THEN 'paused'
        WHEN p_max_lag IS NULL THEN NULL
        WHEN p_lag_error IS NOT NULL OR p_lag IS NULL
            THEN format('replica lag unknown (%s)', coalesce(p_lag_error, 'no value'))
        WHEN p_lag > p_max_lag THEN format('replica lag %s', pg_catalog.pg_size_pretty(p_lag))
    END
$$;

COMMENT ON FUNCTION token_rotation.throttle_reason(text, bigint, bigint, text) IS
    'Why a worker waits before its next batch (paused, replica lag N, replica lag unknown), NULL to go on.';
