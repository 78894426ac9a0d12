-- token_rotation_internal.run_eta(run_id, rows_total, rows_done, batches, elapsed): the ETA of a run, the `eta` of the
-- progress view: eta_seconds() over the run's numbers and its progress log. The start-up is the time from
-- the run's start to its first batch's start. The recent window is the run's last batches (at most 256, and
-- those of the last quarter of its working time, at least 5 s), on the working clock: the log holds wall-clock
-- times, so between two consecutive batches the clock advances by their gap unless that gap is much longer
-- than usual (over 4 times the median gap and over 1 s: a pause, a resume after hours, a crash), which then
-- counts only the batch's own duration. Rounded to 0.1 s. Stateless: the same numbers give the same ETA.
--   SELECT run_id, token_rotation_internal.run_eta(run_id, rows_total, rows_done, batches_done, elapsed)
--     FROM token_rotation.progress;
CREATE OR REPLACE FUNCTION token_rotation_internal.run_eta(
      p_run_id     bigint
    , p_rows_total bigint
    , p_rows_done  bigint
    , p_batches    bigint
    , p_elapsed    interval
)
RETURNS interval
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH recent AS (
        SELECT b.rows, b.started_at, b.finished_at
          FROM token_rotation.batches b
         WHERE b.run_id = p_run_id
         ORDER BY b.finished_at DESC
         LIMIT 256
    ), steps AS (
        SELECT r.rows, r.finished_at
             , extract(epoch FROM r.finished_at - lag(r.finished_at) OVER w)::float8 AS gap
             , extract(epoch FROM r.finished_at - r.started_at)::float8 AS took
          FROM recent r
        WINDOW w AS (ORDER BY r.finished_at)
    ), usual AS (
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s.gap) AS gap, max(s.finished_at) AS newest
          FROM steps s
         WHERE s.gap IS NOT NULL
    ), win AS (
        SELECT sum(s.rows)::bigint AS rows
             , sum(CASE WHEN s.gap > greatest(1.0, 4 * u.gap) THEN least(s.gap, s.took) ELSE s.gap END) AS seconds
          FROM steps s, usual u
         WHERE s.gap IS NOT NULL
           AND s.finished_at > u.newest - make_interval(secs => greatest(5.0, 0.25 * extract(epoch FROM p_elapsed)))
    )
    SELECT make_interval(secs => round(token_rotation_internal.eta_seconds(
               p_rows_total, p_rows_done, p_batches, extract(epoch FROM p_elapsed)::float8,
               (SELECT extract(epoch FROM f.started_at - r.started_at)::float8
                  FROM token_rotation.runs r
                 CROSS JOIN LATERAL (SELECT b.started_at FROM token_rotation.batches b
                                      WHERE b.run_id = r.run_id ORDER BY b.finished_at LIMIT 1) f
                 WHERE r.run_id = p_run_id),
               win.rows, win.seconds)::numeric, 1))
      FROM win
$$;

COMMENT ON FUNCTION token_rotation_internal.run_eta(bigint, bigint, bigint, bigint, interval) IS
    'ETA of a run (the progress view''s eta): eta_seconds() over its numbers, start-up and recent batches.';
