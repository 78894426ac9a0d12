-- token_rotation.rotate(table, ...): gives every row of a table a new gen_random_uuid() token, exactly once
-- per run, one batch per transaction, with the checkpoint and the progress-log row written in the batch's own
-- transaction. It starts a new run, or resumes the open run of that table from its checkpoint; a run's key
-- range is fixed when it starts. With p_workers > 1 the run is cut into that many key slices, and each CALL
-- (one per session) works on one free slice. Must be CALLed outside a transaction block (it COMMITs):
--   CALL token_rotation.rotate('public.tickets');
--   CALL token_rotation.rotate('public.tickets', p_batch_size => 5000, p_max_batches => 100);
--
-- Durability (p_synchronous_commit, default false): the batch transactions commit with synchronous_commit off,
-- which does not wait for the WAL flush at each COMMIT (about 5% of a run on one worker, 10-50% on two, in
-- BENCHMARKS.md). It is safe for exactly-once because a batch's UPDATE, its checkpoint (slices.last_key) and
-- its progress-log row are one transaction, hence one commit record: a crash of the server can lose only the
-- last batches committed before it (at most about 3 x wal_writer_delay, 600 ms by default), and loses each
-- together with its checkpoint, so those rows keep their previous tokens and the resumed run rotates them
-- again. Nothing is ever half applied, skipped or rotated twice; tests/test_faults.py and
-- tests/test_durability.py crash a server in the middle of a run to show it. Any later synchronous commit on the
-- server (an application's write) flushes the earlier batches with it. The cost: a new token that a client
-- read in that last fraction of a second before a crash may be replaced by another one after the resume.
-- Pass p_synchronous_commit => true to wait for every flush (the server's own synchronous_commit setting,
-- e.g. remote_apply for synchronous replicas, then applies unchanged).
CREATE OR REPLACE PROCEDURE token_rotation.rotate(
      p_table               regclass
    , p_column              name     DEFAULT 'token'
    , p_batch_size          integer  DEFAULT 3000
    , p_max_batches         integer  DEFAULT NULL
    , p_sleep               interval DEFAULT '0'
    , p_lock_timeout        interval DEFAULT '1s'
    , p_lock_retries        integer  DEFAULT 5
    , p_quiet               boolean  DEFAULT false
    , p_workers             integer  DEFAULT 1
    , p_target_batch_time   interval DEFAULT NULL
    , p_max_replication_lag bigint   DEFAULT NULL
    , p_synchronous_commit  boolean  DEFAULT false
)
LANGUAGE plpgsql
AS $$
DECLARE
    c_lock_space   CONSTANT integer := token_rotation.lock_space();
    c_max_batch    CONSTANT integer := 1000000;
    c_max_workers  CONSTANT integer := 64;
    c_min_adaptive CONSTANT integer := 100;
    c_max_adaptive CONSTANT integer := 100000;
    c_lookahead    CONSTANT integer := 10000;   -- batch ends found ahead at once (fixed batch size)
    c_lookahead_for CONSTANT interval := '1 second';  -- ... or as many as are found in this time
    v_target       text;
    v_key          name;
    v_key_type     regtype;
    v_run          token_rotation.runs;
    v_slice        token_rotation.slices;
    v_claimed      boolean := false;
    v_new_run      boolean := false;
    v_holders      text;
    v_missing      text;
    v_sql_upper    text;
    v_sql_upper0   text;
    v_sql_update   text;
    v_sql_update0  text;
    v_batch_size   integer;
    v_call_batches integer := 0;
    v_after        text;
    v_upper        text;
    v_ends         text[];   -- the ends of the coming batches, found ahead (NULL: the slice end)
    v_ends_size    integer;  -- the batch size they were found for
    v_end_no       integer;  -- which of them ends the coming batch
    v_seek         text;
    v_seek_from    timestamptz;
    v_last         boolean;
    v_rows         bigint;
    v_started      timestamptz;
    v_now          timestamptz;
    v_mark         timestamptz := clock_timestamp();
    v_retries      integer;
    v_lock_fails   integer := 0;
    v_lock_what    text;
    v_err_state    text;
    v_err_msg      text;
    v_state        text;
    v_wait         text;
    v_waiting      text;
    v_lag          bigint;
    v_lag_error    text;
    v_spr          double precision;
    v_run_done     bigint;
    v_stop         text := 'finished';
    -- Every name below is schema-qualified; the search_path is pinned anyway (pg_catalog first, pg_temp last)
    -- for every transaction, since a procedure that COMMITs cannot carry a SET clause. The caller's own
    -- schemas stay in between, so that the table's triggers find what they always find. So are the settings
    -- that shape the text form of keys (checkpoints are stored as text): a run started under DateStyle
    -- 'SQL, DMY' and resumed under 'SQL, MDY' would otherwise read its checkpoint 01/02 as January 2nd.
    v_search_path  text := concat_ws(', ', 'pg_catalog', nullif(btrim(current_setting('search_path')), ''),
                                     'pg_temp');
BEGIN
    PERFORM token_rotation.pin_settings(v_search_path);

    -- Inside BEGIN ... COMMIT PostgreSQL refuses the COMMIT after each batch. A transaction that began well
    -- before this CALL is such a block: say so before anything else happens. (The check cannot see a block
    -- opened in the same breath, e.g. psql -c 'BEGIN; CALL ...': for those the COMMIT below, before any
    -- change, fails with PostgreSQL's own "invalid transaction termination".)
    IF statement_timestamp() - transaction_timestamp() > interval '1 second' THEN
        RAISE EXCEPTION 'token_rotation.rotate cannot run inside a transaction block'
            USING ERRCODE = 'active_sql_transaction',
                  DETAIL = 'it commits after every batch, and PostgreSQL refuses COMMIT inside BEGIN ... COMMIT',
                  HINT = 'CALL it on its own: psql with AUTOCOMMIT on, psycopg with autocommit=True, '
                         'Alembic inside op.get_context().autocommit_block()';
    END IF;

    IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > c_max_batch THEN
        RAISE EXCEPTION 'batch size must be between 1 and %', c_max_batch
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_batch_size is %s', p_batch_size),
                  HINT = 'the default 3000 suits most tables; larger batches hold row locks longer';
    END IF;
    IF p_workers IS NULL OR p_workers < 1 OR p_workers > c_max_workers THEN
        RAISE EXCEPTION 'workers must be between 1 and %', c_max_workers
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_workers is %s', p_workers),
                  HINT = 'use at most one worker per core of the server';
    END IF;
    IF p_max_batches IS NOT NULL AND p_max_batches < 1 THEN
        RAISE EXCEPTION 'max batches must be at least 1'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_max_batches is %s', p_max_batches),
                  HINT = 'pass NULL (the default) to run to the end';
    END IF;
    IF p_sleep IS NULL OR p_sleep < '0' OR p_lock_timeout IS NULL OR p_lock_timeout < '0'
       OR p_lock_retries IS NULL OR p_lock_retries < 0 THEN
        RAISE EXCEPTION 'sleep, lock timeout and lock retries must not be negative'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('p_sleep is %s, p_lock_timeout is %s, p_lock_retries is %s',
                                  p_sleep, p_lock_timeout, p_lock_retries),
                  HINT = 'the defaults are 0, 1s and 5';
    END IF;
    IF p_target_batch_time IS NOT NULL AND p_target_batch_time <= '0' THEN
        RAISE EXCEPTION 'target batch time must be positive'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_target_batch_time is %s', p_target_batch_time),
                  HINT = 'pass NULL for a fixed batch size';
    END IF;
    IF p_max_replication_lag IS NOT NULL AND p_max_replication_lag < 0 THEN
        RAISE EXCEPTION 'max replication lag must not be negative'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_max_replication_lag is %s', p_max_replication_lag),
                  HINT = 'pass it in bytes, or NULL not to watch replicas';
    END IF;
    IF p_quiet IS NULL OR p_synchronous_commit IS NULL THEN
        RAISE EXCEPTION 'p_quiet and p_synchronous_commit must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'pass true or false';
    END IF;

    SELECT d.qualified, d.key_column, d.key_type INTO v_target, v_key, v_key_type
      FROM token_rotation.describe_target(p_table, p_column) AS d;
    SELECT string_agg(format('%s on %s', n.priv, n.tab), ', ') INTO v_missing
      FROM (VALUES ('token_rotation.runs', 'SELECT'), ('token_rotation.runs', 'INSERT'),
                   ('token_rotation.runs', 'UPDATE'), ('token_rotation.slices', 'SELECT'),
                   ('token_rotation.slices', 'INSERT'), ('token_rotation.slices', 'UPDATE'),
                   ('token_rotation.batches', 'INSERT')) AS n(tab, priv)
     WHERE NOT has_table_privilege(n.tab, n.priv);
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'role % may not write the tables of token_rotation', current_user
            USING ERRCODE = 'insufficient_privilege', DETAIL = format('missing: %s', v_missing),
                  HINT = 'the GRANT recipe for a rotating role is in sql/examples/grants.sql';
    END IF;
    COMMIT;  -- nothing changed yet: inside a transaction block this is where PostgreSQL refuses the CALL
    PERFORM token_rotation.pin_settings(v_search_path);

    -- Claim a slice. The transaction-level lock serialises claims on this table; the session-level lock
    -- on the slice outlives the COMMITs below and is released explicitly when this CALL ends.
    PERFORM pg_advisory_xact_lock(c_lock_space + 1, p_table::oid::integer);

    SELECT * INTO v_run FROM token_rotation.runs
     WHERE target = p_table AND state IN ('active', 'paused') FOR UPDATE;
    IF FOUND AND NOT EXISTS (SELECT FROM token_rotation.slices WHERE run_id = v_run.run_id AND NOT done) THEN
        UPDATE token_rotation.runs SET state = 'finished', finished_at = clock_timestamp(),
               state_changed_at = clock_timestamp()
         WHERE run_id = v_run.run_id;
        v_run := NULL;
    ELSIF FOUND AND v_run.token_column <> p_column THEN
        RAISE EXCEPTION '% has an open run on column %', v_target, quote_ident(v_run.token_column)
            USING ERRCODE = 'object_in_use', DETAIL = format('run %s is %s', v_run.run_id, v_run.state),
                  HINT = format('finish it first, or end it with SELECT token_rotation.cancel(%L)', v_target);
    END IF;

    IF v_run.run_id IS NULL THEN
        v_run := token_rotation.start_run(p_table, p_column, p_batch_size, p_workers);
        IF v_run.state = 'finished' THEN
            IF NOT p_quiet THEN
                RAISE NOTICE 'run %: % is empty, nothing to rotate', v_run.run_id, v_target;
            END IF;
            COMMIT;
            RETURN;
        END IF;
        v_new_run := true;
    END IF;

    FOR v_slice IN SELECT * FROM token_rotation.slices WHERE run_id = v_run.run_id AND NOT done ORDER BY slice_no
    LOOP
        -- a lock this session still holds (a CALL of it that was cut off) counts as claimed, once
        IF token_rotation.slice_holder(v_slice.slice_id) = pg_backend_pid()
           OR pg_try_advisory_lock(c_lock_space, v_slice.slice_id::integer) THEN
            v_claimed := true;
            EXIT;
        END IF;
    END LOOP;
    IF NOT v_claimed THEN
        v_holders := token_rotation.holders(v_run.run_id);
        RAISE EXCEPTION '% is already being rotated', v_target
            USING ERRCODE = 'object_in_use',
                  DETAIL = format('run %s: every unfinished slice is taken: %s', v_run.run_id,
                                  coalesce(v_holders, 'by a session that is just ending')),
                  HINT = format('wait for it (SELECT * FROM token_rotation.progress), or stop it with '
                                'SELECT token_rotation.pause(%L) or token_rotation.cancel(%L)', v_target, v_target);
    END IF;
    IF p_quiet THEN
        NULL;
    ELSIF v_new_run THEN
        RAISE NOTICE 'run %: rotating % rows of %.% in % slice(s), batches of %', v_run.run_id,
            v_run.rows_expected, v_target, quote_ident(p_column), v_run.workers, p_batch_size;
    ELSE
        RAISE NOTICE 'run %: resuming % at slice % of % (% of % rows done; a run keeps the slices it started with)',
            v_run.run_id, v_target, v_slice.slice_no, v_run.workers,
            (SELECT sum(rows_done) FROM token_rotation.slices WHERE run_id = v_run.run_id), v_run.rows_expected;
    END IF;

    v_batch_size := CASE WHEN p_target_batch_time IS NOT NULL THEN coalesce(v_slice.batch_size, p_batch_size)
                         ELSE p_batch_size END;
    UPDATE token_rotation.slices
       SET backend_pid = pg_backend_pid(), heartbeat_at = clock_timestamp(), throttled = NULL,
           batch_size = v_batch_size
     WHERE slice_id = v_slice.slice_id;
    COMMIT;

    -- One batch: the key that ends it (the batch_size-th key after the checkpoint, or the slice end),
    -- then one UPDATE of the key range (checkpoint, end]. The *0 forms serve a slice's first batch.
    -- (ORDER BY names the column through the table alias: a bare name would sort by the text output column)
    -- With a fixed batch size (not adaptive, not cut by lock timeouts) the ends of the next batches are found
    -- ahead, up to c_lookahead of them in one go (or what c_lookahead_for allows, or what p_max_batches leaves
    -- to this CALL). Each lookup walks the key index; run right before its batch, it meets heap pages that the
    -- earlier batches' new row versions have just made not all-visible, so the index-only scan visits the heap
    -- for most keys (0.43 s of a 10 s run at 1M rows; found ahead, while the pages are still all-visible,
    -- 0.10 s: BENCHMARKS.md).
    -- The UPDATE still takes the key range, so a key deleted meanwhile only makes its batch smaller; rows
    -- inserted into the range of a batch found ahead make that batch larger than batch_size.
    v_sql_upper := format('SELECT t.%1$I::text FROM ONLY %2$s AS t WHERE t.%1$I > $1::%3$s AND t.%1$I <= $2::%3$s '
                          'ORDER BY t.%1$I OFFSET $3 LIMIT 1', v_key, v_target, v_key_type);
    v_sql_upper0 := format('SELECT t.%1$I::text FROM ONLY %2$s AS t WHERE t.%1$I <= $2::%3$s '
                           'ORDER BY t.%1$I OFFSET $3 LIMIT 1', v_key, v_target, v_key_type);
    v_sql_update := format('UPDATE ONLY %2$s SET %4$I = pg_catalog.gen_random_uuid() '
                           'WHERE %1$I > $1::%3$s AND %1$I <= $2::%3$s', v_key, v_target, v_key_type, p_column);
    v_sql_update0 := format('UPDATE ONLY %2$s SET %4$I = pg_catalog.gen_random_uuid() '
                            'WHERE %1$I <= $2::%3$s', v_key, v_target, v_key_type, p_column);
    v_after := coalesce(v_slice.last_key, v_slice.lo);

    LOOP
        PERFORM token_rotation.pin_settings(v_search_path);

        -- decide whether to go on before doing any work
        IF p_max_batches IS NOT NULL AND v_call_batches >= p_max_batches THEN
            v_stop := 'max_batches';
            EXIT;
        END IF;
        SELECT state INTO v_state FROM token_rotation.runs WHERE run_id = v_run.run_id;
        IF v_state = 'cancelled' THEN
            v_stop := 'cancelled';
            EXIT;
        END IF;

        -- wait while paused, while a replica lags, or while the lag cannot be measured
        v_lag := NULL;
        v_lag_error := NULL;
        IF v_state <> 'paused' AND p_max_replication_lag IS NOT NULL THEN
            BEGIN
                v_lag := token_rotation.replication_lag();
            EXCEPTION WHEN OTHERS THEN
                v_lag_error := SQLSTATE;
            END;
        END IF;
        v_wait := token_rotation.throttle_reason(v_state, v_lag, p_max_replication_lag, v_lag_error);
        IF v_wait IS NOT NULL THEN
            v_now := clock_timestamp();
            UPDATE token_rotation.slices
               SET throttled = v_wait, heartbeat_at = v_now,
                   elapsed = elapsed + CASE WHEN v_wait = 'paused' THEN v_now - v_mark ELSE '0' END
             WHERE slice_id = v_slice.slice_id;
            IF v_wait = 'paused' THEN
                v_mark := v_now;
            END IF;
            COMMIT;
            IF NOT p_quiet AND v_wait IS DISTINCT FROM v_waiting THEN
                RAISE NOTICE 'run %: waiting: %', v_run.run_id, v_wait;
            END IF;
            v_waiting := v_wait;
            BEGIN
                PERFORM pg_sleep(1);
            EXCEPTION WHEN query_canceled THEN
                v_err_state := SQLSTATE;
                v_err_msg := SQLERRM;
            END;
            EXIT WHEN v_err_state IS NOT NULL;
            IF v_wait = 'paused' THEN
                v_mark := clock_timestamp();  -- paused time is not working time
            END IF;
            CONTINUE;
        END IF;
        v_waiting := NULL;

        -- one batch, in its own transaction
        IF NOT p_synchronous_commit THEN
            PERFORM set_config('synchronous_commit', 'off', true);
        END IF;
        PERFORM set_config('lock_timeout', (extract(epoch FROM p_lock_timeout) * 1000)::bigint::text, true);
        v_started := clock_timestamp();
        v_retries := 0;
        LOOP
            BEGIN
                IF v_ends_size IS DISTINCT FROM v_batch_size OR v_end_no > cardinality(v_ends) THEN
                    v_ends := '{}';
                    v_ends_size := v_batch_size;
                    v_end_no := 1;
                    v_seek := v_after;
                    v_seek_from := clock_timestamp();
                    LOOP
                        IF v_seek IS NULL THEN
                            EXECUTE v_sql_upper0 INTO v_seek USING v_seek, v_slice.hi, v_batch_size - 1;
                        ELSE
                            EXECUTE v_sql_upper INTO v_seek USING v_seek, v_slice.hi, v_batch_size - 1;
                        END IF;
                        v_ends := v_ends || v_seek;
                        EXIT WHEN v_seek IS NULL OR v_seek = v_slice.hi
                               OR p_target_batch_time IS NOT NULL OR v_batch_size <> p_batch_size
                               OR cardinality(v_ends) >= least(c_lookahead, p_max_batches - v_call_batches)
                               OR clock_timestamp() - v_seek_from > c_lookahead_for;
                    END LOOP;
                END IF;
                v_upper := v_ends[v_end_no];
                v_last := v_upper IS NULL OR v_upper = v_slice.hi;
                v_upper := coalesce(v_upper, v_slice.hi);
                IF v_after IS NULL THEN
                    EXECUTE v_sql_update0 USING v_after, v_upper;
                ELSE
                    EXECUTE v_sql_update USING v_after, v_upper;
                END IF;
                GET DIAGNOSTICS v_rows = ROW_COUNT;
                EXIT;
            EXCEPTION
                WHEN unique_violation THEN  -- a new token met an existing one: draw again
                    v_retries := v_retries + 1;
                    IF v_retries > 3 THEN
                        v_err_state := SQLSTATE;
                        v_err_msg := 'new tokens collided with existing ones 4 times in a row';
                        EXIT;
                    END IF;
                WHEN lock_not_available OR deadlock_detected THEN  -- retried below, with a smaller batch
                    v_err_state := SQLSTATE;
                    v_err_msg := SQLERRM;
                    EXIT;
                WHEN query_canceled THEN
                    v_err_state := SQLSTATE;
                    v_err_msg := SQLERRM;
                    EXIT;
                WHEN OTHERS THEN  -- keep the message, drop the DETAIL: it may quote a row, token and all
                    v_err_state := SQLSTATE;
                    v_err_msg := SQLERRM;
                    EXIT;
            END;
        END LOOP;

        -- lock_timeout ran out (55P03), or the batch was the victim of a deadlock with an application
        -- transaction that locks rows out of key order (40P01; the batch, waiting first, checks first and
        -- yields, so the application's statement goes on): back off and retry with a smaller batch
        IF v_err_state IN ('55P03', '40P01') THEN
            ROLLBACK;
            v_lock_fails := v_lock_fails + 1;
            EXIT WHEN v_lock_fails > p_lock_retries;
            v_lock_what := CASE v_err_state WHEN '40P01' THEN 'deadlock' ELSE 'lock timeout' END;
            v_err_state := NULL;
            v_batch_size := greatest(v_batch_size / 2, 1);
            PERFORM token_rotation.pin_settings(v_search_path);
            UPDATE token_rotation.slices
               SET throttled = format('%s %s of %s, batch now %s', v_lock_what, v_lock_fails, p_lock_retries,
                                      v_batch_size)
             WHERE slice_id = v_slice.slice_id;
            COMMIT;
            IF NOT p_quiet THEN
                RAISE NOTICE 'run %: rows locked by another transaction (% %/%), retrying with batches of %',
                    v_run.run_id, v_lock_what, v_lock_fails, p_lock_retries, v_batch_size;
            END IF;
            BEGIN
                PERFORM pg_sleep(least(extract(epoch FROM p_lock_timeout), 1));
            EXCEPTION WHEN query_canceled THEN
                v_err_state := SQLSTATE;
                v_err_msg := SQLERRM;
            END;
            EXIT WHEN v_err_state IS NOT NULL;
            CONTINUE;
        END IF;
        EXIT WHEN v_err_state IS NOT NULL;

        -- checkpoint and progress log, in the batch's transaction
        v_now := clock_timestamp();
        UPDATE token_rotation.slices
           SET last_key = v_upper, rows_done = rows_done + v_rows, batches_done = batches_done + 1,
               elapsed = elapsed + (v_now - v_mark), heartbeat_at = v_now, done = v_last,
               batch_size = v_batch_size, throttled = NULL
         WHERE slice_id = v_slice.slice_id
        RETURNING * INTO v_slice;
        INSERT INTO token_rotation.batches
               (slice_id, batch_no, run_id, after_key, last_key, rows, batch_size, started_at, finished_at, retries)
        VALUES (v_slice.slice_id, v_slice.batches_done, v_run.run_id, v_after, v_upper, v_rows, v_batch_size,
                v_started, v_now, v_retries + v_lock_fails);
        IF v_last THEN
            -- one finisher at a time. FOR NO KEY UPDATE, not FOR UPDATE: the INSERT into batches above holds
            -- a FOR KEY SHARE lock on this row (its foreign key), and so does every other worker's batch;
            -- FOR UPDATE would wait for theirs while they wait for ours when two slices end together.
            PERFORM FROM token_rotation.runs WHERE run_id = v_run.run_id FOR NO KEY UPDATE;
            IF NOT EXISTS (SELECT FROM token_rotation.slices WHERE run_id = v_run.run_id AND NOT done) THEN
                UPDATE token_rotation.runs
                   SET state = 'finished', finished_at = v_now, state_changed_at = v_now
                 WHERE run_id = v_run.run_id;
            END IF;
        END IF;
        COMMIT;
        v_mark := v_now;
        v_after := v_upper;
        v_end_no := v_end_no + 1;
        v_call_batches := v_call_batches + 1;
        v_lock_fails := 0;

        IF NOT p_quiet THEN
            SELECT sum(rows_done) INTO v_run_done FROM token_rotation.slices WHERE run_id = v_run.run_id;
            RAISE NOTICE 'run % slice %/% batch %: % rows, % done, % rows/s', v_run.run_id, v_slice.slice_no,
                v_run.workers, v_slice.batches_done, v_rows,
                to_char(least(100.0 * v_run_done / greatest(v_run.rows_expected, 1),
                              CASE WHEN v_last AND v_run.workers = 1 THEN 100 ELSE 99.9 END), 'FM990.0"%"'),
                round(v_slice.rows_done / greatest(extract(epoch FROM v_slice.elapsed), 0.001));
        END IF;
        EXIT WHEN v_last;

        IF p_target_batch_time IS NOT NULL THEN
            IF v_rows > 0 THEN
                v_spr := coalesce(0.7 * v_spr, 0) + CASE WHEN v_spr IS NULL THEN 1 ELSE 0.3 END
                         * extract(epoch FROM v_now - v_started) / v_rows;
            END IF;
            v_batch_size := token_rotation.next_batch_size(v_batch_size, v_spr,
                                extract(epoch FROM p_target_batch_time), c_min_adaptive, c_max_adaptive);
        ELSIF v_batch_size < p_batch_size THEN
            v_batch_size := least(v_batch_size * 2, p_batch_size);  -- recover after lock-timeout halvings
        END IF;
        IF p_sleep > '0' THEN
            BEGIN
                PERFORM pg_sleep(extract(epoch FROM p_sleep));
            EXCEPTION WHEN query_canceled THEN
                v_err_state := SQLSTATE;
                v_err_msg := SQLERRM;
            END;
            EXIT WHEN v_err_state IS NOT NULL;
        END IF;
    END LOOP;

    -- end of this CALL: a failed batch was rolled back; book the time, bring the run totals up to date,
    -- record the error, release the slice
    IF v_err_state IS NOT NULL THEN
        ROLLBACK;
        PERFORM token_rotation.pin_settings(v_search_path);
    END IF;
    v_now := clock_timestamp();
    UPDATE token_rotation.slices
       SET elapsed = elapsed + (v_now - v_mark),
           backend_pid = NULL, heartbeat_at = v_now, throttled = NULL
     WHERE slice_id = v_slice.slice_id;
    UPDATE token_rotation.runs r
       SET rows_done = t.rows_done, elapsed = t.elapsed,
           last_error = CASE WHEN v_err_state IS NULL THEN r.last_error
                             ELSE format('%s: %s', v_err_state, v_err_msg) END,
           last_error_at = CASE WHEN v_err_state IS NULL THEN r.last_error_at ELSE v_now END
      FROM (SELECT sum(s.rows_done) AS rows_done, max(s.elapsed) AS elapsed
              FROM token_rotation.slices s WHERE s.run_id = v_run.run_id) AS t
     WHERE r.run_id = v_run.run_id
    RETURNING r.* INTO v_run;
    PERFORM pg_advisory_unlock(c_lock_space, v_slice.slice_id::integer);
    COMMIT;

    IF v_err_state = '57014' THEN  -- query_canceled: Ctrl-C, pg_cancel_backend, statement_timeout
        RAISE EXCEPTION 'rotation of % canceled', v_target
            USING ERRCODE = v_err_state,
                  DETAIL = format('run %s: %s of %s rows done; every committed batch is kept (%s)',
                                  v_run.run_id, v_run.rows_done, v_run.rows_expected, v_err_msg),
                  HINT = format('CALL token_rotation.rotate(%L) again to resume from the checkpoint', v_target);
    ELSIF v_err_state = '55P03' THEN
        RAISE EXCEPTION 'rows of % stayed locked through % lock timeouts of %', v_target, v_lock_fails, p_lock_timeout
            USING ERRCODE = v_err_state,
                  DETAIL = format('run %s: %s of %s rows done; every committed batch is kept',
                                  v_run.run_id, v_run.rows_done, v_run.rows_expected),
                  HINT = 'CALL again to resume; raise p_lock_timeout or p_lock_retries if the application '
                         'holds row locks for long';
    ELSIF v_err_state IS NOT NULL THEN
        RAISE EXCEPTION 'batch of run % on % failed: %', v_run.run_id, v_target, v_err_msg
            USING ERRCODE = v_err_state,
                  DETAIL = format('%s of %s rows done; every committed batch is kept',
                                  v_run.rows_done, v_run.rows_expected),
                  HINT = 'fix the cause, then CALL again to resume from the checkpoint';
    END IF;

    IF NOT p_quiet THEN
        RAISE NOTICE 'run %: %', v_run.run_id, CASE v_stop
            WHEN 'max_batches' THEN format('stopped after %s batch(es) as asked; CALL again to resume', v_call_batches)
            WHEN 'cancelled' THEN 'cancelled; the next CALL starts a new run'
            ELSE CASE WHEN v_run.state = 'finished'
                      THEN format('finished: %s rows in %s', v_run.rows_done, date_trunc('second', v_run.elapsed))
                      ELSE format('slice %s finished; other slices are still running', v_slice.slice_no) END
        END;
    END IF;
    -- fewer rows than counted: deleted meanwhile (fine), or updates that a BEFORE UPDATE trigger skipped by
    -- returning NULL (those rows keep their token: nothing in the table's definition shows it beforehand)
    IF v_run.state = 'finished' AND v_run.rows_expected_exact AND v_run.rows_done < v_run.rows_expected THEN
        RAISE WARNING 'run % of % finished with % row(s) fewer than the % counted at its start',
            v_run.run_id, v_target, v_run.rows_expected - v_run.rows_done, v_run.rows_expected
            USING DETAIL = 'rows deleted during the run are fine; a BEFORE UPDATE trigger that returns NULL '
                           'leaves its rows with their old token',
                  HINT = format('check the triggers of %s (\dS %s in psql)', v_target, v_target);
    END IF;
END
$$;

COMMENT ON PROCEDURE token_rotation.rotate(regclass, name, integer, integer, interval, interval, integer, boolean,
                                          integer, interval, bigint, boolean) IS
    'Rotates the uuid token column of a table to gen_random_uuid(), exactly once per run, one COMMIT per batch; '
    'starts a run or resumes the open one. CALL outside a transaction block: '
    'CALL token_rotation.rotate(''public.tickets'', p_batch_size => 3000);';
