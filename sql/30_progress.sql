-- token_rotation.progress: one row per run with live numbers: rows done of the total, percent, working time
-- (accumulated over every CALL, pauses excluded), rate, the ETA (run_eta(): the one estimate, which the CLI
-- shows too), and its workers now.
-- Columns: slices = the run's key slices; workers = the sessions working on them right now, one slice each (a
-- CALL holds its lock); sessions = workers under its old name, kept at its old place until the next release
-- (CREATE OR REPLACE VIEW adds columns only at the end); slices_left = unfinished; free_slices = unfinished
-- and nobody's; heartbeat_at = the newest sign of life of any slice (a batch, a wait, a retry); throttled =
-- why its workers wait (paused, a hold, a health limit); options = the run's options (set_options() changes
-- them); held = the reason of an unexpired hold().
-- The driver polls it; a DBA reads it in psql:
--   SELECT run_id, table_name, state, percent, rows_per_second, eta FROM token_rotation.progress;
CREATE OR REPLACE VIEW token_rotation.progress AS
SELECT r.run_id
     , r.target                                    AS table_name
     , r.token_column
     , r.state
     , r.slices
     , s.workers                                   AS sessions  -- workers' old name, until the next release
     , coalesce(s.rows_done, r.rows_done)          AS rows_done
     , r.rows_expected                             AS rows_total
     , r.rows_expected_exact                       AS rows_total_exact
     , CASE WHEN r.state = 'finished' THEN 100.0
            ELSE least(99.9, round(100.0 * coalesce(s.rows_done, r.rows_done) / greatest(r.rows_expected, 1), 1))
       END                                         AS percent
     , coalesce(s.elapsed, r.elapsed)              AS elapsed
     , round(coalesce(s.rows_done, r.rows_done)
             / greatest(extract(epoch FROM coalesce(s.elapsed, r.elapsed)), 0.001))::bigint AS rows_per_second
     , CASE WHEN r.state IN ('active', 'paused') AND cs.rows_done > 0  -- a distributed run: its overall rate
            THEN make_interval(secs => round(((r.rows_expected - cs.rows_done) * extract(epoch FROM cs.elapsed)
                                              / cs.rows_done)::numeric, 1))
            WHEN r.state IN ('active', 'paused')
            THEN token_rotation_internal.run_eta(r.run_id, r.rows_expected, s.rows_done, s.batches_done, s.elapsed)
       END                                         AS eta
     , s.batches_done
     , s.throttled
     , r.started_at
     , r.finished_at
     , s.heartbeat_at
     , r.last_error
     , coalesce(s.slices_left, 0)                  AS slices_left
     , coalesce(s.free_slices, 0)                  AS free_slices
     , r.options
     , CASE WHEN r.hold_until > clock_timestamp() THEN r.hold_reason END AS held
     , s.workers
  FROM token_rotation.runs r
  -- a Citus distributed table's open run: its rows and time live from every node (its slices are shards'
  -- runs on their nodes); without Citus this is never called
  LEFT JOIN LATERAL (
        SELECT c.rows_done, NULL::bigint AS batches_done, NULL::timestamptz AS heartbeat_at, NULL::text AS throttled,
               NULL::integer AS workers, NULL::integer AS slices_left, NULL::integer AS free_slices, c.elapsed
          FROM token_rotation_internal.citus_progress(r.run_id) AS c
         WHERE r.state IN ('active', 'paused') AND EXISTS (SELECT FROM token_rotation.shards sh WHERE sh.run_id = r.run_id)
       ) cs ON true
  LEFT JOIN LATERAL (
        SELECT sum(sl.rows_done)::bigint AS rows_done
             , sum(sl.batches_done)::bigint AS batches_done
             , max(sl.heartbeat_at) AS heartbeat_at
             , string_agg(DISTINCT sl.throttled, ', ') AS throttled
             , count(*) FILTER (WHERE lk.pid IS NOT NULL)::integer AS workers
             , count(*) FILTER (WHERE NOT sl.done)::integer AS slices_left
             , count(*) FILTER (WHERE NOT sl.done AND lk.pid IS NULL)::integer AS free_slices
             -- a working slice's time runs on between its batches; a paused one's does not
             , max(sl.elapsed + CASE WHEN lk.pid IS NOT NULL AND sl.throttled IS DISTINCT FROM 'paused'
                                     THEN greatest(clock_timestamp() - sl.heartbeat_at, '0') ELSE '0' END) AS elapsed
          FROM token_rotation.slices sl
         CROSS JOIN LATERAL (SELECT token_rotation_internal.slice_holder(sl.slice_id) AS pid) lk
         WHERE sl.run_id = r.run_id
        HAVING count(*) > 0
         UNION ALL
        SELECT cs.* WHERE cs.rows_done IS NOT NULL
       ) s ON true;

COMMENT ON VIEW token_rotation.progress IS
    'Live progress per run: rows done/total, percent, working time, rows/s, ETA, slices and the workers on them, throttling.';
