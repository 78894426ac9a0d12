-- token_rotation_internal.limits(): the bounds that rotate() and plan() enforce and work within, in one place:
-- the largest batch, the most workers (slices) of a run, the range of the adaptive batch size
-- (p_target_batch_time), and how far ahead rotate() finds the ends of the coming batches (at most
-- lookahead_batches at once, or as many as lookahead_time allows), and how often a worker that goes on reads
-- the server's health (health_reason(): replicas, archiver, autovacuum). Why these values: BENCHMARKS.md.
--   SELECT * FROM token_rotation_internal.limits();
CREATE OR REPLACE FUNCTION token_rotation_internal.limits(
      OUT max_batch_size     integer
    , OUT max_workers        integer
    , OUT min_adaptive_batch integer
    , OUT max_adaptive_batch integer
    , OUT lookahead_batches  integer
    , OUT lookahead_time     interval
    , OUT health_interval    interval
)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 1000000, 64, 100, 100000, 10000, interval '1 second', interval '250 milliseconds' $$;

COMMENT ON FUNCTION token_rotation_internal.limits() IS
    'Bounds of rotate() and plan(): batch size, workers, adaptive batch range, batch-end look-ahead, '
    'health check interval.';
