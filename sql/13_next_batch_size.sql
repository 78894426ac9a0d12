-- token_rotation_internal.next_batch_size(...): the adaptive batch-size controller, a pure function.
-- From the smoothed time per row of the batches so far it picks the batch that would take p_target seconds,
-- changing the current size by at most p_max_step times either way, and keeps it within [p_min, p_max]
-- (by default limits()' adaptive range).
-- rotate() calls it after each batch when p_target_batch_time is given:
--   SELECT token_rotation_internal.next_batch_size(3000, 0.00002, 0.5, 100, 100000);  -- 6000: doubled at most
CREATE OR REPLACE FUNCTION token_rotation_internal.next_batch_size(
      p_current          integer
    , p_seconds_per_row  double precision
    , p_target           double precision
    , p_min              integer          DEFAULT (token_rotation_internal.limits()).min_adaptive_batch
    , p_max              integer          DEFAULT (token_rotation_internal.limits()).max_adaptive_batch
    , p_max_step         double precision DEFAULT 2.0
)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN p_seconds_per_row IS NULL OR p_seconds_per_row <= 0 OR p_target IS NULL OR p_target <= 0
            THEN least(greatest(p_current, p_min), p_max)
        ELSE least(greatest(
                 round(least(greatest(p_target / p_seconds_per_row,
                                      p_current / p_max_step),
                             p_current * p_max_step))::integer,
                 p_min), p_max)
    END
$$;

COMMENT ON FUNCTION token_rotation_internal.next_batch_size(integer, double precision, double precision, integer, integer,
                                                   double precision) IS
    'Adaptive batch size: target seconds / smoothed seconds per row, at most p_max_step times the current size '
    'either way, within [p_min, p_max].';
