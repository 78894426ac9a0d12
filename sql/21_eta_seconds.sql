-- token_rotation_internal.eta_seconds(...): THE estimate of a run's remaining working time, in seconds, a pure
-- function of numbers (run_eta() reads them for the progress view, which psql and the CLI both show).
-- The rate is a weighted mean of the long-run rate (3/4) and the rate over a recent window of batches (1/4):
-- the long-run rate amortises one slow batch over the run, as it really is; the recent one follows a lasting
-- change of pace. The long-run rate leaves out the run's start-up (checking the table, counting and slicing
-- its keys: the working time before its first batch began), which would make every early estimate too slow.
-- All times are on the run's working clock (pauses and the gaps between CALLs excluded), so the estimate is
-- right after a resume and for a run driven from anywhere. NULL until 3 batches are in; 0 once every row is.
--   SELECT token_rotation_internal.eta_seconds(1000000, 250000, 84, 10.0, 0.5, 30000, 1.0);  -- 27.5
CREATE OR REPLACE FUNCTION token_rotation_internal.eta_seconds(
      p_rows_total     bigint
    , p_rows_done      bigint
    , p_batches        bigint
    , p_elapsed        double precision  -- working seconds of the run so far
    , p_startup        double precision  -- working seconds before its first batch began
    , p_recent_rows    bigint            -- rows of the recent window of batches
    , p_recent_seconds double precision  -- working seconds that window spans
)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN p_rows_total IS NULL OR p_rows_done IS NULL OR p_batches IS NULL OR p_elapsed IS NULL THEN NULL
        WHEN p_rows_done >= p_rows_total THEN 0
        WHEN p_batches < 3 OR p_rows_done <= 0 OR p_elapsed <= 0 THEN NULL
        ELSE (p_rows_total - p_rows_done) / (
                 CASE WHEN p_recent_rows > 0 AND p_recent_seconds > 0
                      THEN 0.75 * l.rate + 0.25 * p_recent_rows / p_recent_seconds
                      ELSE l.rate END)
    END
      FROM (SELECT p_rows_done / CASE WHEN p_startup > 0 AND p_startup < p_elapsed THEN p_elapsed - p_startup
                                      ELSE p_elapsed END AS rate) AS l
$$;

COMMENT ON FUNCTION token_rotation_internal.eta_seconds(bigint, bigint, bigint, double precision, double precision, bigint,
                                               double precision) IS
    'Remaining working seconds of a run: rows left / (3/4 long-run rate without start-up + 1/4 recent rate); '
    'NULL before 3 batches, 0 when done.';
