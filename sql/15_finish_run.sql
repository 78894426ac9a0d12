-- token_rotation_internal.finish_run(run_id, at): marks a run finished at that time, the one place a run ends well:
-- a new run with no row to rotate (start_run()), the run whose last slice a batch finished (record_batch()),
-- an open run found with every slice done (claim_slice()), and a Citus run whose last shard is done
-- (citus_record()). Called by those, as the tool's owner (the rotating roles cannot write the tool's tables,
-- so a direct call by them fails). Returns the run's row:
--   SELECT (token_rotation_internal.finish_run(42, clock_timestamp())).state;
CREATE OR REPLACE FUNCTION token_rotation_internal.finish_run(
      p_run_id bigint
    , p_at     timestamptz
)
RETURNS token_rotation.runs
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE token_rotation.runs
       SET state = 'finished', finished_at = p_at, state_changed_at = p_at
     WHERE run_id = p_run_id
    RETURNING *
$$;

COMMENT ON FUNCTION token_rotation_internal.finish_run(bigint, timestamptz) IS
    'Marks a run finished at the given time (its one place); returns the run''s row.';
