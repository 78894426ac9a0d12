-- token_rotation_internal.claim_slice(table, column, key, batch_size, target_batch_time, quiet, after_run, plan): the start of a CALL of rotate(), in its transaction: finds the table's open run (or starts one with
-- start_run() from p_plan, which rotate() read with plan_run()), claims a free slice of it with a
-- session-level advisory lock (lock_space(), slice_id) that outlives the COMMITs of the batches and is
-- released by end_call(), marks the slice as worked on by this backend and returns it.
-- It runs as the tool's owner (SECURITY DEFINER: rotating roles have no write access to the tool's tables)
-- and first checks that the caller may rotate the table (authorize(): UPDATE on its token column); it reads
-- no table of the caller's.
-- Returns NULL when the table is empty (the new run is finished at once), and when p_after_run is given, no
-- run is open and the table has a run newer than p_after_run: the run that CALL was meant for has ended since
-- (a driver's late or repeated CALL), and no new run is started. Raises 55006 object_in_use when
-- the open run rotates another column, walks another key than a p_key given, or every unfinished slice is
-- taken. A transaction-level lock on the table serialises the claims of concurrent CALLs (rotate() takes it
-- before it plans). Called by rotate() only:
--   v_slice := token_rotation_internal.claim_slice('public.tickets', 'token', '{id}', 3000, NULL, false, NULL, v_plan);
CREATE OR REPLACE FUNCTION token_rotation_internal.claim_slice(
      p_table             regclass
    , p_column            name
    , p_key               name[]
    , p_batch_size        integer
    , p_target_batch_time interval
    , p_quiet             boolean
    , p_after_run         bigint DEFAULT NULL
    , p_plan              jsonb  DEFAULT NULL
)
RETURNS token_rotation.slices
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_target  text := (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
                         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_table);
    v_run     token_rotation.runs;
    v_slice   token_rotation.slices;
    v_claimed boolean := false;
    v_new_run boolean := false;
BEGIN
    PERFORM token_rotation_internal.authorize(p_table, p_column, 'rotate');
    PERFORM pg_advisory_xact_lock(token_rotation_internal.lock_space() + 1, p_table::oid::integer);

    SELECT * INTO v_run FROM token_rotation.runs
     WHERE target = p_table AND state IN ('active', 'paused') FOR UPDATE;
    IF FOUND AND NOT EXISTS (SELECT FROM token_rotation.slices WHERE run_id = v_run.run_id AND NOT done) THEN
        PERFORM token_rotation_internal.finish_run(v_run.run_id, clock_timestamp());
        v_run := NULL;
    ELSIF FOUND AND v_run.token_column <> p_column THEN
        RAISE EXCEPTION '% has an open run on column %', v_target, quote_ident(v_run.token_column)
            USING ERRCODE = 'object_in_use', DETAIL = format('run %s is %s', v_run.run_id, v_run.state),
                  HINT = format('finish it first, or end it with SELECT token_rotation.cancel(%L)', v_target);
    ELSIF FOUND AND p_key IS DISTINCT FROM v_run.key_columns AND p_key IS NOT NULL THEN
        RAISE EXCEPTION '% has an open run that walks the key (%)', v_target,
                        array_to_string(v_run.key_columns, ', ')
            USING ERRCODE = 'object_in_use',
                  DETAIL = format('run %s is %s; p_key is %s', v_run.run_id, v_run.state, p_key),
                  HINT = format('resume it without p_key (it keeps its key), or end it with '
                                'SELECT token_rotation.cancel(%L)', v_target);
    END IF;

    IF v_run.run_id IS NULL AND p_after_run IS NOT NULL THEN
        SELECT * INTO v_run FROM token_rotation.runs WHERE target = p_table AND run_id > p_after_run
         ORDER BY run_id DESC LIMIT 1;
        IF FOUND THEN  -- the run this CALL was meant for ended before it came: do not start another one
            IF NOT p_quiet THEN
                RAISE NOTICE 'run %: % is %, nothing left to do', v_run.run_id, v_target, v_run.state;
            END IF;
            RETURN NULL;
        END IF;
    END IF;
    IF v_run.run_id IS NULL THEN
        IF p_plan IS NULL THEN
            RAISE EXCEPTION '% has no open run, and no plan for a new one was given', v_target
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'start a run with CALL token_rotation.rotate(), which plans it';
        END IF;
        v_run := token_rotation_internal.start_run(p_table, p_column, p_key, p_batch_size, p_plan);
        IF v_run.state = 'finished' THEN
            IF NOT p_quiet THEN
                RAISE NOTICE 'run %: % is empty, nothing to rotate', v_run.run_id, v_target;
            END IF;
            RETURN NULL;
        END IF;
        v_new_run := true;
    END IF;

    FOR v_slice IN SELECT * FROM token_rotation.slices WHERE run_id = v_run.run_id AND NOT done ORDER BY slice_no
    LOOP
        -- a lock this session still holds (a CALL of it that was cut off) counts as claimed, once
        IF token_rotation_internal.slice_holder(v_slice.slice_id) = pg_backend_pid()
           OR pg_try_advisory_lock(token_rotation_internal.lock_space(), v_slice.slice_id::integer) THEN
            v_claimed := true;
            EXIT;
        END IF;
    END LOOP;
    IF NOT v_claimed THEN
        RAISE EXCEPTION '% is already being rotated', v_target
            USING ERRCODE = 'object_in_use',
                  DETAIL = format('run %s: every unfinished slice is taken: %s', v_run.run_id,
                                  coalesce(token_rotation.holders(v_run.run_id), 'by a session that is just ending')),
                  HINT = format('wait for it (SELECT * FROM token_rotation.progress), or stop it with '
                                'SELECT token_rotation.pause(%L) or token_rotation.cancel(%L)', v_target, v_target);
    END IF;
    IF p_quiet THEN
        NULL;
    ELSIF v_new_run THEN
        RAISE NOTICE 'run %: rotating % rows of %.% in % slice(s), batches of %', v_run.run_id,
            v_run.rows_expected, v_target, quote_ident(p_column), v_run.slices, p_batch_size;
    ELSE
        RAISE NOTICE 'run %: resuming % at slice % of % (% of % rows done; a run keeps the slices it started with)',
            v_run.run_id, v_target, v_slice.slice_no, v_run.slices,
            (SELECT sum(rows_done) FROM token_rotation.slices WHERE run_id = v_run.run_id), v_run.rows_expected;
    END IF;

    -- an adaptive run goes on with the batch size its slice had reached
    UPDATE token_rotation.slices
       SET backend_pid = pg_backend_pid(), heartbeat_at = clock_timestamp(), throttled = NULL,
           batch_size = CASE WHEN p_target_batch_time IS NOT NULL THEN coalesce(batch_size, p_batch_size)
                             ELSE p_batch_size END
     WHERE slice_id = v_slice.slice_id
    RETURNING * INTO v_slice;
    RETURN v_slice;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.claim_slice(regclass, name, name[], integer, interval, boolean, bigint, jsonb) IS
    'Start of a rotate() CALL: finds or starts the open run of a table, claims a free slice (advisory lock), '
    'returns it; NULL for an empty table.';
