-- token_rotation.rotate(table, ...): gives every row of a table a new gen_random_uuid() token, exactly once
-- per run, one batch per transaction, with the checkpoint and the progress-log row written in the batch's own
-- transaction. It starts a new run, or resumes the open run of that table from its checkpoint; a run's key
-- range is fixed when it starts. With p_workers > 1 the run is cut into that many key slices, and each CALL
-- (one per session) works on one free slice. The rows are walked by the primary key (one column or several:
-- a row comparison serves a composite key), or by p_key: NOT NULL columns covered by a unique index, without
-- the token (when the token is the primary key, as in Django REST framework's authtoken_token, p_key names
-- another unique key: p_key => '{user_id}'). A resumed run keeps its key. A partitioned table is one run over
-- every leaf partition (range, list, hash, default, sub-partitioned): its slices are key ranges over the
-- parent, with one progress, one ETA and one verify(). Must be CALLed outside a transaction block (it COMMITs):
--   CALL token_rotation.rotate('public.tickets');
--   CALL token_rotation.rotate('public.tickets', p_batch_size => 5000, p_max_batches => 100);
--   CALL token_rotation.rotate('public.authtoken_token', p_column => 'key', p_key => '{user_id}');
-- The procedure is the loop, its COMMITs and its sleeps; each step is a named function: check_transaction,
-- check_arguments (shared with plan()), describe_target, check_privileges, claim_slice, key_range_sql,
-- wait_reason / mark_waiting, batch_ends, run_batch, mark_lock_retry, record_batch, adapt_batch_size, sleep,
-- end_call, report_call; the bounds are in limits().
--
-- Durability (p_synchronous_commit, default false): the batch transactions commit with synchronous_commit off,
-- which does not wait for the WAL flush at each COMMIT (what that saves: BENCHMARKS.md, "Durability"). It is
-- safe for exactly-once because a batch's UPDATE, its checkpoint (slices.last_key) and
-- its progress-log row are one transaction, hence one commit record: a crash of the server can lose only the
-- last batches committed before it (at most about 3 x wal_writer_delay, 600 ms by default), and loses each
-- together with its checkpoint, so those rows keep their previous tokens and the resumed run rotates them
-- again. Nothing is ever half applied, skipped or rotated twice; tests/test_faults.py and
-- tests/test_durability.py crash a server in the middle of a run to show it. Any later synchronous commit on the
-- server (an application's write) flushes the earlier batches with it. The cost: a new token that a client
-- read in that last fraction of a second before a crash may be replaced by another one after the resume.
-- Pass p_synchronous_commit => true to wait for every flush (the server's own synchronous_commit setting,
-- e.g. remote_apply for synchronous replicas, then applies unchanged).
--
-- Token formats (token_value()): p_format 'uuid' (the default for a uuid column), 'hex:N', 'base64url:N',
-- 'bytes:N', 'function:schema.fn', or 'null' to clear an earlier run's previous column; p_prefix in front of a
-- text token. Grace columns: p_previous_column receives each row's old token and p_rotated_at_column the
-- batch's time, in the same UPDATE.
--
-- A run keeps its options (run_options(), keep_options()): the column, batch size, sleep, lock timeout and
-- retries, target batch time, replication lag limit, synchronous commit, format, prefix and grace columns are
-- stored with the run (runs.options). NULL means "not given": a new run takes the defaults (default_options(),
-- repeated in the comments of the parameter list), a resumed run the values it was started with, and a value given on a resume
-- changes it for the rest of the run (a NOTICE says so). p_max_batches, p_quiet, p_workers, p_after_run and
-- p_trust_table_owner are per CALL (a resume by another role decides again whether to trust the table's
-- owner). p_after_run is for drivers that CALL from several sessions and again after a CALL ends: a new run
-- is only started if the table has no run newer than that id, so a CALL that comes after the run it was meant
-- for has ended returns at once instead of rotating the table a second time.
-- set_options() changes the options of a running run from any session: each worker reads the run's row before
-- each batch (its state and options) and takes new values at once.
--
-- Waits (wait_reason(), health_reason(), mark_waiting()): before each batch a worker waits, holding no row
-- lock and checking again every second, while the run is paused or held (hold()), and while the server's
-- health says so, read at most every limits().health_interval: a replica's lag over p_max_replication_lag
-- bytes or p_max_replay_lag, WAL files waiting to be archived over p_max_archive_queue, an autovacuum worker
-- on the table with p_pause_on_autovacuum; a signal it cannot read (no pg_monitor) means wait, too. The reason
-- is in progress.throttled and a NOTICE.
CREATE OR REPLACE PROCEDURE token_rotation.rotate(
      p_table               regclass
    , p_column              name     DEFAULT NULL  -- 'token'
    , p_batch_size          integer  DEFAULT NULL  -- 1000 (the first batch; given alone: a fixed size)
    , p_max_batches         integer  DEFAULT NULL
    , p_sleep               interval DEFAULT NULL  -- '0'
    , p_lock_timeout        interval DEFAULT NULL  -- '1s'
    , p_lock_retries        integer  DEFAULT NULL  -- 5
    , p_quiet               boolean  DEFAULT false
    , p_workers             integer  DEFAULT 1
    , p_target_batch_time   interval DEFAULT NULL  -- '10ms' for a new run given no batch size
    , p_max_replication_lag bigint   DEFAULT NULL
    , p_synchronous_commit  boolean  DEFAULT NULL  -- false
    , p_format              text     DEFAULT NULL  -- 'uuid' for a uuid column
    , p_prefix              text     DEFAULT NULL
    , p_previous_column     name     DEFAULT NULL
    , p_rotated_at_column   name     DEFAULT NULL
    , p_key                 name[]   DEFAULT NULL
    , p_max_replay_lag      interval DEFAULT NULL
    , p_max_archive_queue   integer  DEFAULT NULL
    , p_pause_on_autovacuum boolean  DEFAULT NULL  -- false
    , p_after_run           bigint   DEFAULT NULL
    , p_trust_table_owner   boolean  DEFAULT false
    , p_where               text     DEFAULT NULL
    , p_fill_null           boolean  DEFAULT NULL  -- false
    , p_older_than          interval DEFAULT NULL
    , p_stop_at             timestamptz DEFAULT NULL
    , p_max_duration        interval DEFAULT NULL
    , p_citus               jsonb    DEFAULT NULL
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_limits       record;   -- token_rotation_internal.limits()
    v_sql          record;   -- token_rotation_internal.key_range_sql(): the statements over key ranges of the table
    v_target       text;
    v_key          name[];   -- the key walked: p_key, else the open run's, else the primary key
    v_run          token_rotation.runs;
    v_slice        token_rotation.slices;
    v_batch_size   integer;
    v_call_batches integer := 0;
    v_after        text[];   -- the checkpoint: the coming batch covers the keys (v_after, v_upper]
    v_upper        text[];
    v_last         boolean;  -- the coming batch ends the slice
    v_ends         text[];   -- the ends of the coming batches (keys' text forms), found ahead (NULL: slice end)
    v_ends_size    integer;  -- the batch size they were found for
    v_end_no       integer;  -- which of them ends the coming batch
    v_batch        record;   -- token_rotation_internal.run_batch(): rows, retries, err_state, err_msg
    v_wait         record;   -- token_rotation_internal.wait_reason(): state, reason, options
    v_waiting      text;     -- why the worker waited at the last check (NULL: it went on)
    v_health       text;     -- token_rotation_internal.health_reason() at the last check
    v_health_at    timestamptz;  -- when that was
    v_relations    regclass[];   -- the table and its leaf partitions (autovacuum on any of them)
    v_started      timestamptz;
    v_mark         timestamptz := pg_catalog.clock_timestamp();  -- the slice's working time is booked up to here
    v_lock_fails   integer := 0;
    v_err_state    text;
    v_err_msg      text;
    v_spr          double precision;  -- smoothed seconds per row (adaptive batch size)
    v_stop         text := 'finished';
    v_given        jsonb;    -- the options this CALL gives (NULL: not given)
    v_options      jsonb;    -- the options it works with: run_options(); in the loop, the run's as stored
    v_opt          record;   -- token_rotation_internal.option_values(): those a worker takes anew when they change
    v_column       name;
    v_value        record;   -- token_rotation_internal.token_value(): token_format, set_list
    v_plan         jsonb;    -- token_rotation_internal.plan_run(): the key range and slices of a new run
    v_open         jsonb;    -- the options of the table's open run (NULL: none)
    v_filter       text;     -- token_rotation_internal.run_filter(): the rows the run rotates, besides its key range
    v_stop_at      timestamptz;  -- the end of this CALL's window (p_stop_at, p_max_duration)
    -- Every transaction of the procedure runs its own code under search_path pg_catalog, pg_temp (pinned by
    -- pin_settings() after each COMMIT: a procedure that COMMITs cannot carry a SET clause), so that nothing it
    -- calls resolves to a look-alike in a schema of the caller's (CVE-2018-1058); only the batch's UPDATE
    -- (run_batch()), where the table's triggers run, sees the caller's schemas: v_search_path. Until the first
    -- pin, every name is schema-qualified.
    v_search_path  text := pg_catalog.current_setting('search_path');
BEGIN
    PERFORM token_rotation_internal.pin_settings();
    v_search_path := concat_ws(', ', 'pg_catalog', nullif(btrim(v_search_path), ''), 'pg_temp');
    PERFORM token_rotation_internal.check_transaction();
    PERFORM token_rotation_internal.check_privileges();
    IF p_citus IS NOT NULL THEN  -- the tag of a Citus shard's run: only on that shard
        PERFORM token_rotation_internal.citus_check_tag(p_table, p_citus);
    END IF;
    v_given := jsonb_build_object('column', p_column, 'batch_size', p_batch_size, 'sleep', p_sleep,
                                  'lock_timeout', p_lock_timeout, 'lock_retries', p_lock_retries,
                                  'target_batch_time', p_target_batch_time, 'max_replication_lag', p_max_replication_lag,
                                  'max_replay_lag', p_max_replay_lag, 'max_archive_queue', p_max_archive_queue,
                                  'pause_on_autovacuum', p_pause_on_autovacuum,
                                  'synchronous_commit', p_synchronous_commit, 'format', p_format, 'prefix', p_prefix,
                                  'previous_column', p_previous_column, 'rotated_at_column', p_rotated_at_column,
                                  'fill_null', p_fill_null, 'older_than', p_older_than, 'citus', p_citus);
    v_stop_at := least(p_stop_at, pg_catalog.clock_timestamp() + p_max_duration);
    v_open := (SELECT r.options FROM token_rotation.runs r WHERE r.target = p_table AND r.state IN ('active', 'paused'));
    v_options := token_rotation_internal.run_options(p_table, v_given);
    v_column := v_options->>'column';
    SELECT * INTO v_opt FROM token_rotation_internal.option_values(v_options);
    v_key := coalesce(p_key, (SELECT r.key_columns FROM token_rotation.runs r
                                WHERE r.target = p_table AND r.state IN ('active', 'paused')));
    SELECT d.qualified, d.key_columns INTO v_target, v_key
      FROM token_rotation_internal.describe_target(p_table, v_column, v_key, p_trust_table_owner) AS d;
    PERFORM token_rotation_internal.check_arguments(v_options, p_workers, p_max_batches, p_quiet, v_key);
    SELECT * INTO v_value FROM token_rotation_internal.token_value(p_table, v_column, v_options->>'format', v_options->>'prefix',
                                                          v_options->>'previous_column', v_options->>'rotated_at_column',
                                                          p_trust_table_owner);
    v_options := v_options || jsonb_build_object('format', v_value.token_format);
    -- the rows of the run: fixed when it starts (a resume may repeat them, not change them), and its subset
    -- expression checked again at every CALL with the rights of the role that CALLs
    v_given := v_given || jsonb_build_object('where', token_rotation_internal.check_where(
                              p_table, p_where, v_search_path, p_trust_table_owner,
                              ARRAY[v_column, (v_options->>'previous_column')::name]));
    PERFORM token_rotation_internal.check_where(p_table, v_open->>'where', 'pg_catalog, pg_temp', p_trust_table_owner,
                                       ARRAY[v_column, (v_options->>'previous_column')::name]);
    PERFORM token_rotation_internal.check_rows(p_table, v_open, v_given, v_options);
    v_options := v_options || jsonb_strip_nulls(jsonb_build_object('where', v_given->'where'));
    IF v_stop_at <= pg_catalog.clock_timestamp() THEN
        IF NOT p_quiet THEN
            RAISE NOTICE 'the window of this CALL ended at %: nothing done', v_stop_at;
        END IF;
        COMMIT;
        RETURN;
    END IF;
    COMMIT;  -- nothing changed yet: inside a transaction block this is where PostgreSQL refuses the CALL
    PERFORM token_rotation_internal.pin_settings();
    IF EXISTS (SELECT FROM token_rotation_internal.citus_shards(p_table)) THEN  -- Citus: a run per shard, on its node
        CALL token_rotation_internal.rotate_citus(p_table, v_options, v_key, p_workers, p_max_batches, p_quiet, p_after_run,
                                         p_trust_table_owner, v_stop_at);
        RETURN;
    END IF;

    -- claims serialised per table; a new run is planned here, reading the table with the caller's rights,
    -- and written by claim_slice() as the tool's owner
    PERFORM pg_advisory_xact_lock(token_rotation_internal.lock_space() + 1, p_table::oid::integer);
    IF p_citus IS NOT NULL THEN  -- a shard's open run of an older coordinator run is over; one moved away and
        PERFORM token_rotation_internal.citus_retire(p_table, p_citus);  -- back goes on on the shard's table of now
        PERFORM token_rotation_internal.citus_adopt(p_table, p_citus);
    END IF;
    IF NOT EXISTS (SELECT FROM token_rotation.runs r WHERE r.target = p_table AND r.state IN ('active', 'paused'))
       AND EXISTS (SELECT FROM token_rotation.runs r WHERE r.options->'citus' = p_citus) THEN
        COMMIT;  -- a shard of a distributed table's run, rotated here already: never a second run of it
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT FROM token_rotation.runs r
                    WHERE r.target = p_table AND r.state IN ('active', 'paused')
                      AND EXISTS (SELECT FROM token_rotation.slices s WHERE s.run_id = r.run_id AND NOT s.done))
       AND NOT EXISTS (SELECT FROM token_rotation.runs r WHERE r.target = p_table AND r.run_id > p_after_run) THEN
        IF v_options ? 'older_than' THEN  -- due: rotated before the run started, less the age
            v_options := v_options || jsonb_build_object('rotated_before', pg_catalog.clock_timestamp()
                                                                           - (v_options->>'older_than')::interval);
        END IF;
        v_plan := token_rotation_internal.plan_run(p_table, v_key, p_workers, token_rotation_internal.run_filter(p_table, v_column,
                                                                                               v_options));
    END IF;
    v_slice := token_rotation_internal.claim_slice(p_table, v_column, v_key, v_opt.batch_size, v_opt.target_batch_time,
                                          p_quiet, p_after_run, v_plan);
    IF v_slice.slice_id IS NULL THEN  -- an empty table (its new run is finished already), or p_after_run's run ended
        COMMIT;
        RETURN;
    END IF;
    PERFORM token_rotation_internal.keep_options(v_slice.run_id, v_given, v_options);
    SELECT * INTO v_run FROM token_rotation.runs WHERE run_id = v_slice.run_id;
    v_key := v_run.key_columns;
    v_options := v_run.options;
    SELECT * INTO v_opt
      FROM token_rotation_internal.option_values((token_rotation.default_options() - 'target_batch_time') || v_options);
    v_relations := p_table || coalesce(v_run.partitions, '{}');
    COMMIT;
    PERFORM token_rotation_internal.pin_settings();
    SELECT * INTO v_limits FROM token_rotation_internal.limits();
    v_filter := token_rotation_internal.run_filter(p_table, v_column, v_options);
    SELECT * INTO v_sql FROM token_rotation_internal.key_range_sql(p_table, v_key, v_column, v_value.set_list, v_filter);
    v_batch_size := v_slice.batch_size;
    v_after := coalesce(v_slice.last_key, v_slice.lo);

    LOOP

        -- decide whether to go on before doing any work: the run's state and options (set_options() takes
        -- effect here), then wait while paused or held, or while the server's health says so
        IF p_max_batches IS NOT NULL AND v_call_batches >= p_max_batches THEN
            v_stop := 'max_batches';
            EXIT;
        END IF;
        IF clock_timestamp() >= v_stop_at THEN
            v_stop := 'window';
            EXIT;
        END IF;
        v_wait := token_rotation_internal.wait_reason(v_run.run_id);
        IF v_wait.state = 'cancelled' THEN
            v_stop := 'cancelled';
            EXIT;
        END IF;
        IF v_wait.options IS DISTINCT FROM v_options THEN
            v_options := v_wait.options;
            SELECT * INTO v_opt
              FROM token_rotation_internal.option_values((token_rotation.default_options() - 'target_batch_time')
                                                || v_options);
            IF v_opt.target_batch_time IS NULL THEN
                v_batch_size := v_opt.batch_size;  -- fixed batches from now on (lock-timeout halvings start anew)
            END IF;
            v_health_at := NULL;
        END IF;
        IF v_wait.reason IS NULL AND (v_waiting IS NOT NULL OR v_health_at IS NULL
                                      OR clock_timestamp() - v_health_at >= v_limits.health_interval) THEN
            v_health := token_rotation_internal.health_reason(v_options, v_relations);
            v_health_at := clock_timestamp();
        END IF;
        IF coalesce(v_wait.reason, v_health) IS NOT NULL THEN
            v_mark := token_rotation_internal.mark_waiting(v_run.run_id, v_slice.slice_id, coalesce(v_wait.reason, v_health),
                                                  v_waiting, v_mark, p_quiet);
            COMMIT;
            PERFORM token_rotation_internal.pin_settings();
            v_waiting := coalesce(v_wait.reason, v_health);
            SELECT * INTO v_err_state, v_err_msg FROM token_rotation_internal.sleep(1);
            EXIT WHEN v_err_state IS NOT NULL;
            IF v_wait.reason = 'paused' THEN
                v_mark := clock_timestamp();  -- paused time is not working time
            END IF;
            CONTINUE;
        END IF;
        v_waiting := NULL;

        -- one batch in its own transaction: where it ends (found ahead while the batch size stays), its UPDATE
        IF NOT v_opt.synchronous_commit THEN
            PERFORM set_config('synchronous_commit', 'off', true);
        END IF;
        PERFORM set_config('lock_timeout', (extract(epoch FROM v_opt.lock_timeout) * 1000)::bigint::text, true);
        v_started := clock_timestamp();
        IF v_ends_size IS DISTINCT FROM v_batch_size OR v_end_no > cardinality(v_ends) THEN
            SELECT e.ends, e.err_state, e.err_msg INTO v_ends, v_err_state, v_err_msg
              FROM token_rotation_internal.batch_ends(v_sql.end_after, v_sql.end_first, v_after, v_slice.hi, v_batch_size,
                       CASE WHEN v_opt.target_batch_time IS NULL AND v_batch_size = v_opt.batch_size
                            THEN least(v_limits.lookahead_batches, p_max_batches - v_call_batches) ELSE 1 END,
                       v_limits.lookahead_time) AS e;
            v_ends_size := v_batch_size;
            v_end_no := 1;
        END IF;
        IF v_err_state IS NULL THEN
            v_upper := v_ends[v_end_no]::text[];
            v_last := v_upper IS NULL OR v_upper = v_slice.hi;
            v_upper := coalesce(v_upper, v_slice.hi);
            v_batch := token_rotation_internal.run_batch(v_sql.update_after, v_sql.update_first, v_after, v_upper,
                                                v_search_path);
            v_err_state := v_batch.err_state;
            v_err_msg := v_batch.err_msg;
        END IF;

        -- lock_timeout ran out (55P03), or the batch was the victim of a deadlock with an application
        -- transaction that locks rows out of key order (40P01; the batch, waiting first, checks first and
        -- yields, so the application's statement goes on): back off and retry with a smaller batch
        IF v_err_state IN ('55P03', '40P01') THEN
            ROLLBACK;
            v_lock_fails := v_lock_fails + 1;
            EXIT WHEN v_lock_fails > v_opt.lock_retries;
            v_batch_size := greatest(v_batch_size / 2, 1);
            PERFORM token_rotation_internal.pin_settings();
            PERFORM token_rotation_internal.mark_lock_retry(v_run.run_id, v_slice.slice_id, v_err_state, v_lock_fails,
                                                   v_opt.lock_retries, v_batch_size, p_quiet);
            COMMIT;
            PERFORM token_rotation_internal.pin_settings();
            SELECT * INTO v_err_state, v_err_msg
              FROM token_rotation_internal.sleep(least(extract(epoch FROM v_opt.lock_timeout), 1));
            EXIT WHEN v_err_state IS NOT NULL;
            CONTINUE;
        END IF;
        EXIT WHEN v_err_state IS NOT NULL;

        -- the checkpoint and the progress-log row, in the batch's transaction
        v_slice := token_rotation_internal.record_batch(v_run.run_id, v_slice.slice_id, v_after, v_upper, v_batch.rows,
                                               v_batch_size, v_started, v_mark, v_batch.retries + v_lock_fails,
                                               v_last);
        COMMIT;
        PERFORM token_rotation_internal.pin_settings();
        v_mark := v_slice.heartbeat_at;
        v_after := v_upper;
        v_end_no := v_end_no + 1;
        v_call_batches := v_call_batches + 1;
        v_lock_fails := 0;
        IF NOT p_quiet THEN
            PERFORM token_rotation_internal.report_batch(v_run, v_slice, v_batch.rows, v_last);
        END IF;
        EXIT WHEN v_last;

        IF v_opt.target_batch_time IS NOT NULL OR v_batch_size < v_opt.batch_size THEN  -- adaptive, or after halvings
            SELECT * INTO v_batch_size, v_spr FROM token_rotation_internal.adapt_batch_size(v_batch_size, v_spr,
                v_batch.rows, extract(epoch FROM v_mark - v_started)::float8, v_opt.batch_size, v_opt.target_batch_time);
        END IF;
        IF v_opt.sleep > '0' THEN
            SELECT * INTO v_err_state, v_err_msg FROM token_rotation_internal.sleep(extract(epoch FROM v_opt.sleep));
            EXIT WHEN v_err_state IS NOT NULL;
        END IF;
    END LOOP;

    -- end of this CALL: a failed batch is rolled back; book the time, release the slice, then report; the
    -- error is stored and raised redacted with the run's own format (a trigger's message may quote a token)
    IF v_err_state IS NOT NULL THEN
        ROLLBACK;
        PERFORM token_rotation_internal.pin_settings();
        v_err_msg := token_rotation_internal.redact(v_err_msg, v_run.options->>'format', v_run.options->>'prefix');
    END IF;
    v_run := token_rotation_internal.end_call(v_run.run_id, v_slice.slice_id, v_mark, v_err_state, v_err_msg);
    COMMIT;
    PERFORM token_rotation_internal.pin_settings();
    PERFORM token_rotation_internal.report_call(v_run, v_target, v_slice.slice_no, v_stop, v_call_batches, v_err_state,
                                       v_err_msg, v_lock_fails, v_opt.lock_timeout, p_quiet);
END
$$;

COMMENT ON PROCEDURE token_rotation.rotate(regclass, name, integer, integer, interval, interval, integer, boolean,
                                          integer, interval, bigint, boolean, text, text, name, name, name[],
                                          interval, integer, boolean, bigint, boolean, text, boolean, interval,
                                          timestamptz, interval, jsonb) IS
    'Gives the token column of a table new random tokens (p_format: uuid, hex:N, base64url:N, bytes:N, '
    'function:schema.fn; p_prefix; grace columns p_previous_column, p_rotated_at_column), exactly once per run, '
    'of every row or of those that match p_where and p_older_than (NULL tokens only with p_fill_null), '
    'walking its primary key or p_key (a partitioned table: every leaf partition, one run), '
    'one COMMIT per batch, until p_stop_at or p_max_duration if given; '
    'starts a run or resumes the open one with its stored options (NULL: not given). '
    'CALL outside a transaction block: '
    'CALL token_rotation.rotate(''public.tickets'', p_batch_size => 3000);';
