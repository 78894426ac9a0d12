-- token_rotation.set_options(table, ...): retunes the open run of a table from any session, while it goes on:
-- each of its workers takes the new values before its next batch (it reads the run's options before each
-- batch). Changeable: the batch size, sleep, lock timeout and retries, target batch time (adaptive batches),
-- the health limits (max_replication_lag in bytes, max_replay_lag, max_archive_queue, pause_on_autovacuum)
-- and synchronous commit. p_unset names options to remove, back to "not watched" / fixed batches:
-- target_batch_time, max_replication_lag, max_replay_lag, max_archive_queue. The column, key, format,
-- prefix and grace columns are the run's for its whole life (cancel it and start a new run to change
-- them). The values are checked as rotate() checks them; the run keeps them for later CALLs, as if given
-- to a resume. Says what changed in a NOTICE (SQLSTATE TROPT) and returns the run's options:
--   SELECT token_rotation.set_options('public.tickets', p_sleep => '20ms', p_target_batch_time => '5ms');
--   SELECT token_rotation.set_options('public.tickets', p_unset => '{max_replication_lag}');
CREATE OR REPLACE FUNCTION token_rotation.set_options(
      p_table               regclass
    , p_batch_size          integer  DEFAULT NULL
    , p_sleep               interval DEFAULT NULL
    , p_lock_timeout        interval DEFAULT NULL
    , p_lock_retries        integer  DEFAULT NULL
    , p_target_batch_time   interval DEFAULT NULL
    , p_max_replication_lag bigint   DEFAULT NULL
    , p_max_replay_lag      interval DEFAULT NULL
    , p_max_archive_queue   integer  DEFAULT NULL
    , p_pause_on_autovacuum boolean  DEFAULT NULL
    , p_synchronous_commit  boolean  DEFAULT NULL
    , p_unset               text[]   DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_unsettable CONSTANT text[] := ARRAY['target_batch_time', 'max_replication_lag', 'max_replay_lag',
                                           'max_archive_queue'];
    v_run_id  bigint;
    v_stored  jsonb;
    v_options jsonb;
    v_changes text;
BEGIN
    IF NOT coalesce(p_unset, '{}') <@ v_unsettable THEN
        RAISE EXCEPTION 'cannot unset %', array_to_string(ARRAY(SELECT unnest(p_unset) EXCEPT SELECT unnest(v_unsettable)), ', ')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('options that can be unset: %s; give the others a new value',
                                array_to_string(v_unsettable, ', '));
    END IF;
    v_run_id := token_rotation_internal.open_run(p_table);
    PERFORM token_rotation_internal.authorize_run(v_run_id, NULL, 'control');
    SELECT coalesce(r.options, '{}') INTO v_stored FROM token_rotation.runs r WHERE r.run_id = v_run_id;
    v_options := (v_stored - coalesce(p_unset, '{}'))
                 || jsonb_strip_nulls(jsonb_build_object(
                        'batch_size', p_batch_size, 'sleep', p_sleep, 'lock_timeout', p_lock_timeout,
                        'lock_retries', p_lock_retries, 'target_batch_time', p_target_batch_time,
                        'max_replication_lag', p_max_replication_lag, 'max_replay_lag', p_max_replay_lag,
                        'max_archive_queue', p_max_archive_queue, 'pause_on_autovacuum', p_pause_on_autovacuum,
                        'synchronous_commit', p_synchronous_commit));
    PERFORM token_rotation_internal.check_arguments(token_rotation.default_options() || v_options);
    v_changes := token_rotation_internal.option_changes(v_stored, v_options);
    IF v_changes IS NOT NULL THEN
        UPDATE token_rotation.runs SET options = v_options WHERE run_id = v_run_id;
        PERFORM token_rotation_internal.citus_control(v_run_id);  -- a Citus distributed table: its shards' runs too
        RAISE NOTICE 'run %: options changed for the rest of the run: %', v_run_id, v_changes
            USING ERRCODE = 'TROPT', HINT = 'its workers take them before their next batch';
    END IF;
    RETURN v_options;
END
$$;

COMMENT ON FUNCTION token_rotation.set_options(regclass, integer, interval, interval, integer, interval, bigint,
                                               interval, integer, boolean, boolean, text[]) IS
    'Changes the options of a table''s open run (batch size, sleep, lock timeout/retries, target batch time, '
    'health limits, synchronous commit; p_unset removes some); its workers take them at their next batch.';
