-- token_rotation_internal.adapt_batch_size(...): rotate()'s batch size for the next batch, a pure function. With
-- p_target_batch_time: the smoothed seconds per row (exponentially, 0.3 for the newest batch) and the size
-- next_batch_size() picks from it within limits()' adaptive range. Without it: a batch size halved by lock
-- timeouts doubles back towards p_batch_size. Returns the new size and the smoothed seconds per row.
--   SELECT * FROM token_rotation_internal.adapt_batch_size(3000, NULL, 3000, 0.06, 3000, '100ms');  -- 5000
CREATE OR REPLACE FUNCTION token_rotation_internal.adapt_batch_size(
      p_current         integer
    , p_seconds_per_row double precision
    , p_rows            bigint
    , p_seconds         double precision
    , p_batch_size      integer
    , p_target          interval
    , OUT batch_size      integer
    , OUT seconds_per_row double precision
)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_target IS NOT NULL
                THEN token_rotation_internal.next_batch_size(p_current, s.spr, extract(epoch FROM p_target)::float8,
                                                    l.min_adaptive_batch, l.max_adaptive_batch)
                ELSE least(p_current * 2, p_batch_size) END
         , s.spr
      FROM token_rotation_internal.limits() AS l
     CROSS JOIN LATERAL (
           SELECT CASE WHEN p_target IS NULL OR p_rows <= 0 THEN p_seconds_per_row
                       ELSE coalesce(0.7 * p_seconds_per_row, 0)
                            + CASE WHEN p_seconds_per_row IS NULL THEN 1 ELSE 0.3 END * p_seconds / p_rows
                  END AS spr) AS s
$$;

COMMENT ON FUNCTION token_rotation_internal.adapt_batch_size(integer, double precision, bigint, double precision, integer,
                                                    interval) IS
    'Next batch size of rotate(): adaptive towards p_target seconds a batch, or doubling back after lock '
    'timeouts; returns it with the smoothed seconds per row.';
