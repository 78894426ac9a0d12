-- Citus: a distributed table rotated from the coordinator, each shard by an ordinary run of the tool on the
-- node that holds it, all nodes at once.
--
-- Citus refuses gen_random_uuid() (any volatile function) in an UPDATE of a distributed table, but each shard
-- is a plain table on its node, where the tool works as on one server: a run per shard, whose batches COMMIT
-- with their checkpoints on that node (exactly once per shard, with no two-phase commit per batch). The
-- coordinator keeps one run of the distributed table (runs, and a row per shard in token_rotation.shards) and
-- sends the shards' CALLs in waves, at most p_workers sessions per node at a time (master_run_on_worker()), each
-- CALL tagged with the coordinator's run and its shard (p_citus: {"run", "started", "shard"}, kept in the
-- shard run's options). A wave holds the metadata lock of the unfinished shards (ShareLock, as DML does): a shard
-- move or a rebalance waits for the end of the wave, never cuts into a batch. Before each wave the coordinator
-- takes a census of every node's tagged runs: a shard whose run finished anywhere is done; a shard whose
-- unfinished run is on a node that no longer holds it (moved after an interrupted CALL) stops the run with that
-- node named, so that no row is rotated twice; every other shard is sent to the node that holds it, where an
-- open tagged run resumes and a finished one returns at once.

-- token_rotation.citus_open_run(table, column, key, options, rows, after_run): the coordinator's open run of a
-- distributed table, or a new one with a row per shard (rows: the count the caller read with its rights);
-- NULL when no run is open and one newer than p_after_run exists (the run that CALL was meant for has ended).
-- As the tool's owner, for a role that may rotate the table (authorize()).
CREATE OR REPLACE FUNCTION token_rotation.citus_open_run(
      p_table     regclass
    , p_column    name
    , p_key       name[]
    , p_options   jsonb
    , p_rows      bigint
    , p_after_run bigint
)
RETURNS token_rotation.runs
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run token_rotation.runs;
BEGIN
    PERFORM token_rotation.authorize(p_table, p_column, 'rotate');
    PERFORM pg_advisory_xact_lock(token_rotation.lock_space() + 1, p_table::oid::integer);
    SELECT * INTO v_run FROM token_rotation.runs WHERE target = p_table AND state IN ('active', 'paused');
    IF FOUND THEN
        RETURN v_run;
    END IF;
    IF EXISTS (SELECT FROM token_rotation.runs WHERE target = p_table AND run_id > p_after_run) THEN
        RETURN NULL;
    END IF;
    INSERT INTO token_rotation.runs (target, token_column, key_columns, key_types, batch_size, started_by,
                                     workers, rows_expected, options)
    SELECT p_table, p_column, p_key,
           ARRAY(SELECT a.atttypid::regtype FROM unnest(p_key) WITH ORDINALITY AS k(name, ord)
                   JOIN pg_attribute a ON a.attrelid = p_table AND a.attname = k.name ORDER BY k.ord),
           (p_options->>'batch_size')::integer, token_rotation.caller(),
           greatest((SELECT count(DISTINCT c.shardid) FROM token_rotation.citus_shards(p_table) AS c), 1),
           p_rows, p_options
    RETURNING * INTO v_run;
    INSERT INTO token_rotation.shards (run_id, shardid, shard)
    SELECT DISTINCT v_run.run_id, c.shardid, c.shard FROM token_rotation.citus_shards(p_table) AS c;
    RETURN v_run;
END
$$;

COMMENT ON FUNCTION token_rotation.citus_open_run(regclass, name, name[], jsonb, bigint, bigint) IS
    'The coordinator''s open run of a distributed table, or a new one with a row per shard.';

-- token_rotation.citus_record(run, shards, elapsed, error): books a wave of the coordinator's run: each
-- shard's node, its run there, rows and whether it finished (p_shards: [{shardid, node, port, node_run_id,
-- rows_done, done}]), the wave's time, the error that ended it (redacted); the run finishes when every shard
-- has. Returns the run. As the tool's owner, for a role that may rotate the table (authorize_run()).
CREATE OR REPLACE FUNCTION token_rotation.citus_record(
      p_run_id  bigint
    , p_shards  jsonb
    , p_elapsed interval
    , p_error   text
)
RETURNS token_rotation.runs
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run token_rotation.runs;
BEGIN
    PERFORM token_rotation.authorize_run(p_run_id, NULL, 'record a wave of');
    UPDATE token_rotation.shards s
       SET node = coalesce(e.node, s.node), port = coalesce(e.port, s.port),
           node_run_id = coalesce(e.node_run_id, s.node_run_id), rows_done = coalesce(e.rows_done, s.rows_done),
           done = s.done OR coalesce(e.done, false)
      FROM jsonb_to_recordset(coalesce(p_shards, '[]')) AS e(shardid bigint, node text, port integer,
                                                            node_run_id bigint, rows_done bigint, done boolean)
     WHERE s.run_id = p_run_id AND s.shardid = e.shardid;
    UPDATE token_rotation.runs r
       SET rows_done = t.rows_done, elapsed = r.elapsed + coalesce(p_elapsed, '0'),
           last_error = coalesce(token_rotation.redact(p_error, r.options->>'format', r.options->>'prefix'),
                                 r.last_error),
           last_error_at = CASE WHEN p_error IS NOT NULL THEN clock_timestamp() ELSE r.last_error_at END
      FROM (SELECT coalesce(sum(s.rows_done), 0)::bigint AS rows_done FROM token_rotation.shards s
             WHERE s.run_id = p_run_id) AS t
     WHERE r.run_id = p_run_id
    RETURNING r.* INTO v_run;
    IF v_run.state = 'active'
       AND NOT EXISTS (SELECT FROM token_rotation.shards s WHERE s.run_id = p_run_id AND NOT s.done) THEN
        v_run := token_rotation.finish_run(p_run_id, clock_timestamp());
    END IF;
    RETURN v_run;
END
$$;

COMMENT ON FUNCTION token_rotation.citus_record(bigint, jsonb, interval, text) IS
    'Books a wave of a distributed table''s run: its shards'' nodes, runs, rows and ends; finishes the run.';

-- token_rotation.citus_check_tag(table, citus): raises unless the table is the shard the tag names, on this
-- node (pg_dist_shard, which Citus keeps on every node): a tag is what the coordinator's census and verify() trust,
-- so a role may only tag runs of a shard of a distributed table it may rotate, never of a table of its own.
CREATE OR REPLACE FUNCTION token_rotation.citus_check_tag(
      p_table regclass
    , p_citus jsonb
)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_shard regclass;
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_shard') IS NOT NULL
       AND jsonb_typeof(p_citus->'shard') = 'number' AND jsonb_typeof(p_citus->'run') = 'number' THEN
        -- shard_name() leaves out the schema public only
        EXECUTE pg_catalog.format('SELECT pg_catalog.to_regclass(CASE WHEN n.nspname = ''public'' THEN ''public.''
                                                                     ELSE '''' END || %s(s.logicalrelid, s.shardid))
                                     FROM pg_catalog.pg_dist_shard s
                                     JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid
                                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                                    WHERE s.shardid = $1', 'pg_catalog.shard_name')
           INTO v_shard USING (p_citus->>'shard')::bigint;
    END IF;
    IF v_shard IS DISTINCT FROM p_table THEN
        RAISE EXCEPTION 'p_citus does not name % on this node', p_table
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('p_citus is %s', p_citus),
                  HINT = 'p_citus is set by the coordinator''s rotate() of a distributed table: leave it out';
    END IF;
END
$$;

COMMENT ON FUNCTION token_rotation.citus_check_tag(regclass, jsonb) IS
    'Raises unless the table is, on this node, the Citus shard that a p_citus tag names.';

-- token_rotation.citus_adopt(shard, citus): on a worker, before a shard's CALL: an open run with this tag
-- whose table no longer exists is this shard's run from before the shard was moved away and back (a move
-- makes a new table with the same name and rows, its committed rotations carried across): it goes on, on the
-- shard's table as it is now, from its checkpoint (the key, not the table, marks it). Returns its run id, or
-- NULL. As the tool's owner, for a role that may rotate the shard's token column (authorize()).
CREATE OR REPLACE FUNCTION token_rotation.citus_adopt(
      p_shard regclass
    , p_citus jsonb
)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run token_rotation.runs;
BEGIN
    SELECT * INTO v_run FROM token_rotation.runs r
     WHERE r.options->'citus' = p_citus AND r.state IN ('active', 'paused')
       AND NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = r.target::oid)
       AND NOT EXISTS (SELECT FROM token_rotation.runs o WHERE o.target = p_shard AND o.state IN ('active', 'paused'))
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM token_rotation.authorize(p_shard, v_run.token_column, 'rotate');
    UPDATE token_rotation.runs SET target = p_shard WHERE run_id = v_run.run_id;
    RETURN v_run.run_id;
END
$$;

COMMENT ON FUNCTION token_rotation.citus_adopt(regclass, jsonb) IS
    'A shard''s open run whose table is gone (moved away and back) goes on on the shard''s table as it is now.';

-- token_rotation.citus_retire(shard, citus): on a worker, before a shard's CALL: an open run of the shard
-- tagged with another coordinator run (one that was cancelled, or lost) is over: it is cancelled, so that this
-- run gives the shard a run of its own (rotating every row again, as a new run does). As the tool's owner, for a
-- role that may rotate the shard (set_run_state()'s authorize_run()).
CREATE OR REPLACE FUNCTION token_rotation.citus_retire(
      p_shard regclass
    , p_citus jsonb
)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run_id bigint;
BEGIN
    SELECT r.run_id INTO v_run_id FROM token_rotation.runs r
     WHERE r.target = p_shard AND r.state IN ('active', 'paused') AND r.options ? 'citus'
       AND (r.options->'citus') - 'shard' IS DISTINCT FROM p_citus - 'shard';
    IF v_run_id IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM token_rotation.authorize_run(v_run_id, NULL, 'control');
    UPDATE token_rotation.runs SET state = 'cancelled', state_changed_at = clock_timestamp() WHERE run_id = v_run_id;
    RETURN v_run_id;
END
$$;

COMMENT ON FUNCTION token_rotation.citus_retire(regclass, jsonb) IS
    'Cancels a shard''s open run tagged with another coordinator run, before this run gives the shard its own.';

-- token_rotation.citus_cancel(run): on a node, cancels its open runs of the shards of a coordinator's run (the
-- tag less its shard), for a role that may control each (cancel()); returns how many. Sent by the coordinator
-- when its run was cancelled.
CREATE OR REPLACE FUNCTION token_rotation.citus_cancel(
      p_run jsonb
)
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(token_rotation.cancel(r.target))
      FROM token_rotation.runs r
     WHERE (r.options->'citus') - 'shard' = p_run AND r.state IN ('active', 'paused')
$$;

COMMENT ON FUNCTION token_rotation.citus_cancel(jsonb) IS
    'Cancels this node''s open runs of the shards of a coordinator''s run; returns how many.';

-- token_rotation.citus_node_progress(run): on a node, the live rows done (progress view) of its runs of the
-- shards of a coordinator's run (the tag less its shard), and the longest working time of those still open
-- (the shards of the wave in progress), as JSON text.
CREATE OR REPLACE FUNCTION token_rotation.citus_node_progress(
      p_run jsonb
)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT json_build_object(
               'rows_done', coalesce(sum(p.rows_done) FILTER (WHERE p.state <> 'cancelled'), 0),
               'open_seconds', coalesce(max(extract(epoch FROM p.elapsed)) FILTER (WHERE p.state IN ('active', 'paused')),
                                        0))::text
      FROM token_rotation.progress p
     WHERE (p.options->'citus') - 'shard' = p_run
$$;

COMMENT ON FUNCTION token_rotation.citus_node_progress(jsonb) IS
    'This node''s live rows done and longest open working time of the shards of a coordinator''s run (JSON text).';

-- token_rotation.citus_census(run): this node's runs of shards of a coordinator's run (the tag p_citus less its
-- shard: {"run", "started"}), as JSON text for the coordinator's master_run_on_worker(): shardid, node_run_id,
-- rows_done, state, busy (a session works on it now: another CALL of the coordinator's, or of a DBA's).
CREATE OR REPLACE FUNCTION token_rotation.citus_census(
      p_run jsonb
)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(json_agg(json_build_object('shardid', (r.options->'citus'->>'shard')::bigint,
                                               'node_run_id', r.run_id, 'rows_done', r.rows_done,
                                               'state', r.state, 'busy', EXISTS (
                                                   SELECT FROM token_rotation.slices sl
                                                    WHERE sl.run_id = r.run_id AND NOT sl.done
                                                      AND token_rotation.slice_holder(sl.slice_id) IS NOT NULL))
                                   ORDER BY r.run_id)::text, '[]')
      FROM token_rotation.runs r
     WHERE (r.options->'citus') - 'shard' = p_run
$$;

COMMENT ON FUNCTION token_rotation.citus_census(jsonb) IS
    'This node''s runs of the shards of a coordinator''s run, as JSON text: shardid, node_run_id, rows_done, state.';

-- token_rotation.citus_shard_call(table, options, key, citus): the CALL that rotates one shard on its node,
-- with every option of the coordinator's run spelled out (so that a shard started at a resume gets the
-- run's, not the defaults), quiet, one session, tagged with p_citus.
CREATE OR REPLACE FUNCTION token_rotation.citus_shard_call(
      p_shard         text
    , p_options       jsonb
    , p_key           name[]
    , p_max_batches   integer
    , p_trust_owner   boolean
    , p_stop_at       timestamptz
    , p_citus         jsonb
)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.format(
        'CALL token_rotation.rotate(%L, p_column => %L, p_batch_size => %L, p_max_batches => %L, p_sleep => %L, '
        'p_lock_timeout => %L, p_lock_retries => %L, p_quiet => true, p_workers => 1, p_target_batch_time => %L, '
        'p_max_replication_lag => %L, p_synchronous_commit => %L, p_format => %L, p_prefix => %L, '
        'p_previous_column => %L, p_rotated_at_column => %L, p_key => %L, p_max_replay_lag => %L, '
        'p_max_archive_queue => %L, p_pause_on_autovacuum => %L, p_trust_table_owner => %L, p_where => %L, '
        'p_fill_null => %L, p_older_than => %L, p_stop_at => %L, p_citus => %L)',
        p_shard, p_options->>'column', p_options->>'batch_size', p_max_batches, p_options->>'sleep',
        p_options->>'lock_timeout', p_options->>'lock_retries', p_options->>'target_batch_time',
        p_options->>'max_replication_lag', p_options->>'synchronous_commit', p_options->>'format',
        p_options->>'prefix', p_options->>'previous_column', p_options->>'rotated_at_column', p_key,
        p_options->>'max_replay_lag', p_options->>'max_archive_queue', p_options->>'pause_on_autovacuum',
        coalesce(p_trust_owner, false), p_options->>'where', p_options->>'fill_null', p_options->>'older_than',
        p_stop_at, p_citus)
$$;

COMMENT ON FUNCTION token_rotation.citus_shard_call(text, jsonb, name[], integer, boolean, timestamptz, jsonb) IS
    'The CALL of rotate() that rotates one shard of a distributed table on its node, every option spelled out.';

-- token_rotation.rotate_citus(...): rotate() of a Citus distributed table on the coordinator (rotate() hands
-- over to it after its checks, with the options it resolved): see the head of this file. Each wave: lock the
-- unfinished shards' metadata, take the census of every node's runs of this run, book it, then send up to
-- p_workers shard CALLs per node at once and book what they did; COMMIT between waves. A CALL of a shard that
-- fails stops the run's CALL with the node and the shard named; the same CALL again resumes. Stops at p_stop_at,
-- after p_max_batches batches per shard CALL (one wave), or when the run is paused or cancelled.
CREATE OR REPLACE PROCEDURE token_rotation.rotate_citus(
      p_table             regclass
    , p_options           jsonb
    , p_key               name[]
    , p_workers           integer
    , p_max_batches       integer
    , p_quiet             boolean
    , p_after_run         bigint
    , p_trust_table_owner boolean
    , p_stop_at           timestamptz
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_run      token_rotation.runs;
    v_kind     text;
    v_rows     bigint;
    v_tag      jsonb;     -- the coordinator run's tag in its shards' runs options, less the shard
    v_census   jsonb;     -- the shards' runs of this run, on every node: [{shardid, node, port, node_run_id, ...}]
    v_wave     record;    -- the shards sent in this wave: ids, nodes, ports, commands
    v_node     text;      -- master_run_on_worker()'s answer for one command: node, port, success, result
    v_port     integer;
    v_ok       boolean;
    v_text     text;
    v_id       bigint;    -- the shard of that command
    v_failed   text;
    v_started  timestamptz;
    v_booked   jsonb;
    v_seen     record;    -- rows done and shards done after the last wave, and how many waves changed neither
    v_idle     integer := 0;
    v_left     bigint;    -- shards not finished, by the census
    v_done     bigint;    -- rows done by the shards' runs, by the census
BEGIN
    PERFORM token_rotation.pin_settings();
    v_kind := (SELECT c.kind FROM token_rotation.citus_shards(p_table) AS c LIMIT 1);
    IF v_kind = 'reference' THEN
        RAISE EXCEPTION '% is a Citus reference table: its copy on every node must hold the same tokens', p_table
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'Citus refuses a volatile function such as gen_random_uuid() in its UPDATE, and a run '
                           'per copy would give each node other tokens',
                  HINT = 'keep tokens in a distributed table, or undistribute_table() it, rotate it, and '
                         'create_reference_table() it again';
    END IF;
    IF token_rotation.citus_node() IS DISTINCT FROM 'coordinator' THEN
        RAISE EXCEPTION '% is a Citus distributed table: rotate it from the coordinator', p_table
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'connect to the coordinator: its CALL rotates every shard on the node that holds it';
    END IF;
    EXECUTE pg_catalog.format('SELECT count(*) FROM %s', p_table) INTO v_rows;  -- with the caller's rights
    v_run := token_rotation.citus_open_run(p_table, (p_options->>'column')::name, p_key, p_options, v_rows,
                                           p_after_run);
    COMMIT;
    PERFORM token_rotation.pin_settings();
    IF v_run.run_id IS NULL THEN
        RETURN;
    END IF;
    v_tag := token_rotation.citus_tag(v_run);
    LOOP
        -- the run as other sessions left it (pause, cancel): read, not locked, so that they never wait for a wave
        SELECT * INTO v_run FROM token_rotation.runs r WHERE r.run_id = v_run.run_id;
        IF v_run.state = 'paused' THEN  -- its shards' runs pause too (citus_control()); this CALL waits
            COMMIT;
            PERFORM token_rotation.pin_settings();
            PERFORM pg_catalog.pg_sleep(1);
            CONTINUE;
        END IF;
        EXIT WHEN v_run.state <> 'active';
        EXIT WHEN pg_catalog.clock_timestamp() >= p_stop_at;
        v_started := pg_catalog.clock_timestamp();
        -- the unfinished shards stay where they are until this wave ends (a move waits for its COMMIT)
        EXECUTE pg_catalog.format('SELECT %s(5, $1)', 'pg_catalog.lock_shard_metadata')
            USING ARRAY(SELECT s.shardid FROM token_rotation.shards s WHERE s.run_id = v_run.run_id AND NOT s.done);
        -- the census: every node's runs of this run (a node that cannot be reached stops the CALL, named)
        v_census := '[]';
        FOR v_node, v_port, v_ok, v_text IN
            SELECT * FROM token_rotation.citus_on_nodes(p_table, pg_catalog.format(
                'SELECT token_rotation.citus_census(%L::jsonb)', v_tag))
        LOOP
            IF NOT v_ok THEN
                v_failed := pg_catalog.format('node %s:%s: %s', v_node, v_port, v_text);
                EXIT;
            END IF;
            v_census := v_census || (SELECT coalesce(jsonb_agg(e || jsonb_build_object('node', v_node, 'port', v_port)),
                                                     '[]')
                                       FROM jsonb_array_elements(v_text::jsonb) AS e);
        END LOOP;
        IF v_failed IS NOT NULL THEN
            EXIT;
        END IF;
        -- a shard whose unfinished run is on a node that no longer holds it: rows there are rotated, and the
        -- node that holds it now would rotate them again
        SELECT pg_catalog.format('shard %s moved from node %s:%s to %s:%s while its run %s there was unfinished',
                                 s.shard, e->>'node', e->>'port', c.node, c.port, e->>'node_run_id')
          INTO v_failed
          FROM jsonb_array_elements(v_census) AS e
          JOIN token_rotation.shards s ON s.run_id = v_run.run_id AND s.shardid = (e->>'shardid')::bigint
          JOIN token_rotation.citus_shards(p_table) AS c ON c.shardid = s.shardid
         WHERE e->>'state' IN ('active', 'paused')  -- move it back, and CALL again
           AND (c.node, c.port) IS DISTINCT FROM (e->>'node', (e->>'port')::integer)
         LIMIT 1;
        IF v_failed IS NULL THEN  -- a shard run cancelled on its node: the coordinator's run cannot finish
            SELECT pg_catalog.format('the run %s of shard %s on node %s:%s was cancelled there', e->>'node_run_id',
                                     s.shard, e->>'node', e->>'port')
              INTO v_failed
              FROM jsonb_array_elements(v_census) AS e
              JOIN token_rotation.shards s ON s.run_id = v_run.run_id AND s.shardid = (e->>'shardid')::bigint
             WHERE e->>'state' = 'cancelled'
             LIMIT 1;
        END IF;
        IF v_failed IS NOT NULL THEN
            EXIT;
        END IF;
        v_booked := (SELECT coalesce(jsonb_agg(jsonb_build_object('shardid', e->'shardid', 'node', e->'node',
                                               'port', e->'port', 'node_run_id', e->'node_run_id',
                                               'rows_done', e->'rows_done', 'done', e->>'state' = 'finished')), '[]')
                       FROM jsonb_array_elements(v_census) AS e);
        -- booked with the wave's time after it (a row lock on the run held through a wave would make pause,
        -- hold and set wait for it); every shard finished: the run is
        SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT FROM jsonb_array_elements(v_census) AS e
                                                   WHERE (e->>'shardid')::bigint = s.shardid
                                                     AND e->>'state' = 'finished')),
               (SELECT coalesce(sum((e->>'rows_done')::bigint), 0) FROM jsonb_array_elements(v_census) AS e)
          INTO v_left, v_done
          FROM token_rotation.shards s WHERE s.run_id = v_run.run_id;
        IF v_left = 0 THEN
            v_run := token_rotation.citus_record(v_run.run_id, v_booked, NULL, NULL);
            EXIT;
        END IF;
        -- waves whose shards all returned without a row or a shard more done: a shard's CALL that cannot go on
        -- (it would be sent again for ever)
        v_idle := CASE WHEN (v_done, v_left) = v_seen THEN v_idle + 1 ELSE 0 END;
        v_seen := (v_done, v_left);
        IF v_idle >= 3 THEN
            v_failed := pg_catalog.format('3 waves in a row rotated nothing: %s shard(s) returned at once on their '
                                          'nodes', v_left);
            EXIT;
        END IF;
        -- the wave: per node, up to p_workers unfinished shards
        SELECT array_agg(w.shardid) AS ids, array_agg(w.node) AS names, array_agg(w.port) AS ports,
               array_agg(token_rotation.citus_shard_call(w.shard, v_run.options, v_run.key_columns, p_max_batches,
                         p_trust_table_owner, p_stop_at,
                         v_tag || jsonb_build_object('shard', w.shardid)))
                   AS commands
          INTO v_wave
          FROM (SELECT s.shardid, c.shard, c.node, c.port,
                       row_number() OVER (PARTITION BY c.node, c.port ORDER BY s.shardid) AS n
                  FROM token_rotation.shards s
                  JOIN token_rotation.citus_shards(p_table) AS c ON c.shardid = s.shardid
                 WHERE s.run_id = v_run.run_id
                   AND NOT EXISTS (SELECT FROM jsonb_array_elements(v_census) AS e  -- finished, or another session's
                                    WHERE (e->>'shardid')::bigint = s.shardid
                                      AND (e->>'state' = 'finished' OR (e->>'busy')::boolean))) AS w
         WHERE w.n <= p_workers;
        IF v_wave.ids IS NULL THEN  -- every unfinished shard is another session's now: wait for them
            v_run := token_rotation.citus_record(v_run.run_id, v_booked, NULL, NULL);
            COMMIT;
            PERFORM token_rotation.pin_settings();
            PERFORM pg_catalog.pg_sleep(1);
            CONTINUE;
        END IF;
        IF NOT p_quiet THEN
            RAISE NOTICE 'run %: % of % shard(s) done; rotating % shard(s) on % node(s)', v_run.run_id,
                v_run.workers - v_left, v_run.workers, cardinality(v_wave.ids),
                (SELECT count(DISTINCT (n, p)) FROM unnest(v_wave.names, v_wave.ports) AS u(n, p));
        END IF;
        FOR v_node, v_port, v_ok, v_text, v_id IN
            EXECUTE pg_catalog.format('SELECT r.node_name, r.node_port, r.success, r.result, u.id FROM %s($1, $2, $3, true)
                                            WITH ORDINALITY AS r(node_name, node_port, success, result, ord)
                       JOIN unnest($4) WITH ORDINALITY AS u(id, ord) ON u.ord OPERATOR(pg_catalog.=) r.ord',
                                      'pg_catalog.master_run_on_worker')
              USING v_wave.names, v_wave.ports, v_wave.commands, v_wave.ids
        LOOP
            IF NOT v_ok AND v_failed IS NULL THEN
                v_failed := pg_catalog.format('shard %s on node %s:%s: %s',
                    (SELECT s.shard FROM token_rotation.shards s WHERE s.run_id = v_run.run_id AND s.shardid = v_id),
                    v_node, v_port, v_text);
            END IF;
        END LOOP;
        v_run := token_rotation.citus_record(v_run.run_id, v_booked, pg_catalog.clock_timestamp() - v_started, NULL);
        COMMIT;
        PERFORM token_rotation.pin_settings();
        EXIT WHEN v_failed IS NOT NULL OR p_max_batches IS NOT NULL;
    END LOOP;
    IF v_run.state = 'cancelled' AND v_failed IS NULL THEN  -- and so are its shards' runs, on every node
        FOR v_node, v_port, v_ok, v_text IN
            SELECT * FROM token_rotation.citus_on_nodes(p_table, pg_catalog.format(
                'SELECT token_rotation.citus_cancel(%L::jsonb)', v_tag))
        LOOP
            IF NOT v_ok THEN
                v_failed := pg_catalog.format('run %s is cancelled, but its shards'' runs on node %s:%s could not '
                                              'be: %s', v_run.run_id, v_node, v_port, v_text);
            END IF;
        END LOOP;
    END IF;
    IF v_failed IS NOT NULL THEN
        ROLLBACK;
        PERFORM token_rotation.pin_settings();
        v_run := token_rotation.citus_record(v_run.run_id, NULL, NULL, v_failed);
        COMMIT;
        PERFORM token_rotation.pin_settings();
        RAISE EXCEPTION 'rotation of % stopped: %', p_table,
                        token_rotation.redact(v_failed, v_run.options->>'format', v_run.options->>'prefix')
            USING ERRCODE = 'connection_exception',
                  DETAIL = pg_catalog.format('%s of %s rows done; every committed batch is kept on its node',
                                             v_run.rows_done, v_run.rows_expected),
                  HINT = 'the same CALL resumes: each shard goes on from its checkpoint on its node';
    END IF;
    IF NOT p_quiet THEN
        RAISE NOTICE 'run %: % (% of % shards)', v_run.run_id, v_run.state,
            (SELECT count(*) FROM token_rotation.shards s WHERE s.run_id = v_run.run_id AND s.done), v_run.workers;
    END IF;
END
$$;

COMMENT ON PROCEDURE token_rotation.rotate_citus(regclass, jsonb, name[], integer, integer, boolean, bigint, boolean,
                                                timestamptz) IS
    'rotate() of a Citus distributed table on the coordinator: each shard by a run on its node, in waves of '
    'at most p_workers sessions per node, exactly once per shard.';

-- token_rotation.citus_node_verify(run): on a node, verify() of each of its runs of shards of a coordinator's
-- run (the tag less its shard), as JSON text: shardid, node_run_id, state, rows_done, the names of its failed
-- checks.
CREATE OR REPLACE FUNCTION token_rotation.citus_node_verify(
      p_run jsonb
)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(json_agg(json_build_object(
               'shardid', (r.options->'citus'->>'shard')::bigint, 'node_run_id', r.run_id, 'state', r.state,
               'rows_done', r.rows_done,
               'failed', (SELECT coalesce(json_agg(v.check_name), '[]') FROM token_rotation.verify(r.run_id) AS v
                           WHERE NOT v.ok))
           ORDER BY r.run_id)::text, '[]')
      FROM token_rotation.runs r
     WHERE (r.options->'citus') - 'shard' = p_run
$$;

COMMENT ON FUNCTION token_rotation.citus_node_verify(jsonb) IS
    'verify() of this node''s runs of the shards of a coordinator''s run, as JSON text.';

-- token_rotation.citus_verify(run): verify() of a coordinator's run of a distributed table: every shard has
-- exactly one run, finished, on the node that holds it, each passing verify() there (its batches chain over
-- its key range, its rows agree, its tokens are unique within the shard); the shards' rows add up to the
-- run's. A token is unique across shards only where a unique index (which includes the distribution column)
-- says so. A node that cannot be reached fails the check, named.
CREATE OR REPLACE FUNCTION token_rotation.citus_verify(
      p_run_id bigint
)
RETURNS TABLE (check_name text, ok boolean, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run    token_rotation.runs;
    v_asked  integer := 0;
    v_node   text;
    v_port   integer;
    v_ok     boolean;
    v_text   text;
    v_found  jsonb := '[]'::jsonb;
    v_failed text;
    v_bad    bigint;
    v_n      bigint;
BEGIN
    SELECT * INTO v_run FROM token_rotation.runs WHERE run_id = p_run_id;
    FOR v_node, v_port, v_ok, v_text IN
        SELECT * FROM token_rotation.citus_on_nodes(v_run.target, pg_catalog.format(
            'SELECT token_rotation.citus_node_verify(%L::jsonb)', token_rotation.citus_tag(v_run)))
    LOOP
        v_asked := v_asked + 1;
        IF v_ok THEN  -- the runs of this run's shards (a tag names a shard of its own table only)
            v_found := v_found || (SELECT coalesce(jsonb_agg(e || jsonb_build_object('node', v_node, 'port', v_port)),
                                                   '[]')
                                     FROM jsonb_array_elements(v_text::jsonb) AS e
                                    WHERE EXISTS (SELECT FROM token_rotation.shards s WHERE s.run_id = p_run_id
                                                     AND s.shardid = (e->>'shardid')::bigint));
        ELSE
            v_failed := concat_ws('; ', v_failed, pg_catalog.format('node %s:%s: %s', v_node, v_port, v_text));
        END IF;
    END LOOP;

    check_name := 'finished';
    ok := v_run.state = 'finished';
    detail := format('state %s', v_run.state);
    RETURN NEXT;

    check_name := 'every node answered';
    ok := v_failed IS NULL;
    detail := coalesce(v_failed, format('%s node(s)', v_asked));
    RETURN NEXT;

    -- each shard: exactly one run, finished, on the node that holds the shard now
    SELECT count(*) FILTER (WHERE r.n IS DISTINCT FROM 1 OR NOT r.finished OR NOT r.here), count(*)
      INTO v_bad, v_n
      FROM token_rotation.shards s
      LEFT JOIN LATERAL (
            SELECT count(*) AS n, bool_and(e->>'state' = 'finished') AS finished,
                   bool_and(EXISTS (SELECT FROM token_rotation.citus_shards(v_run.target) AS c
                                     WHERE c.shardid = s.shardid AND c.node = e->>'node'
                                       AND c.port = (e->>'port')::integer)) AS here
              FROM jsonb_array_elements(v_found) AS e
             WHERE (e->>'shardid')::bigint = s.shardid) AS r ON true
     WHERE s.run_id = p_run_id;
    check_name := 'every shard has one finished run on its node';
    ok := v_bad = 0 AND v_n > 0;
    detail := format('%s shard(s), %s out of line', v_n, v_bad);
    RETURN NEXT;

    SELECT count(*) FILTER (WHERE jsonb_array_length(e->'failed') > 0), count(*),
           string_agg(format('%s on %s:%s (%s)', e->>'node_run_id', e->>'node', e->>'port', e->'failed'), '; ')
               FILTER (WHERE jsonb_array_length(e->'failed') > 0)
      INTO v_bad, v_n, v_text
      FROM jsonb_array_elements(v_found) AS e;
    check_name := 'each shard''s run verifies on its node';
    ok := v_bad = 0 AND v_n > 0;
    detail := CASE WHEN v_text IS NOT NULL THEN format('failed: %s', v_text)
                   ELSE format('%s shard run(s) passed every check', v_n) END;
    RETURN NEXT;

    SELECT coalesce(sum((e->>'rows_done')::bigint), 0) INTO v_n FROM jsonb_array_elements(v_found) AS e;
    check_name := 'row counts agree with the shards';
    ok := v_n = v_run.rows_done;
    detail := format('%s rows done by the shards'' runs, %s booked by the run', v_n, v_run.rows_done);
    RETURN NEXT;
END
$$;

COMMENT ON FUNCTION token_rotation.citus_verify(bigint) IS
    'verify() of a distributed table''s run: each shard has one finished run on its node that verifies there.';

-- token_rotation.citus_follow(run, control): on a node, makes this node's open runs of the shards of a
-- coordinator's run (the tag less its shard) follow its control: its state (paused, active, cancelled), its
-- hold, and the options set_options() may change. Sent by citus_control() as the tool's owner (it writes the
-- tool's tables: no other role can); the shards' CALLs read it before their next batch. Returns how many runs.
CREATE OR REPLACE FUNCTION token_rotation.citus_follow(
      p_run     jsonb
    , p_control jsonb
)
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH followed AS (
        UPDATE token_rotation.runs r
           SET state = CASE WHEN p_control->>'state' = 'cancelled' THEN 'cancelled'
                            WHEN p_control->>'state' IN ('active', 'paused') THEN p_control->>'state'
                            ELSE r.state END,
               state_changed_at = CASE WHEN p_control->>'state' IS DISTINCT FROM r.state THEN clock_timestamp()
                                       ELSE r.state_changed_at END,
               hold_reason = p_control->>'hold_reason',
               hold_until = (p_control->>'hold_until')::timestamptz,
               options = r.options || coalesce(p_control->'options', '{}')
         WHERE (r.options->'citus') - 'shard' = p_run AND r.state IN ('active', 'paused')
        RETURNING 1
    )
    SELECT count(*) FROM followed
$$;

COMMENT ON FUNCTION token_rotation.citus_follow(jsonb, jsonb) IS
    'This node''s open runs of a coordinator''s shards follow its state, hold and retunable options.';

-- token_rotation.citus_control(run): after pause, unpause, cancel, hold or set_options of a coordinator's run of
-- a distributed table (they call it, as the tool's owner, once they have authorized the caller), sends the run's
-- state, hold and retunable options to every node (citus_follow()), so that the shards' CALLs in progress
-- follow within a batch, not only at the next wave. A node that cannot be reached: a WARNING naming it (the
-- coordinator's next wave follows the run anyway). Nothing for another run.
CREATE OR REPLACE FUNCTION token_rotation.citus_control(
      p_run_id bigint
)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run    token_rotation.runs;
    v_answer record;
BEGIN
    SELECT * INTO v_run FROM token_rotation.runs WHERE run_id = p_run_id;
    IF NOT EXISTS (SELECT FROM token_rotation.shards s WHERE s.run_id = p_run_id) THEN
        RETURN;
    END IF;
    FOR v_answer IN
        SELECT n.node, n.port, n.ok, n.result
          FROM token_rotation.citus_on_nodes(v_run.target, pg_catalog.format(
                   'SELECT token_rotation.citus_follow(%L::jsonb, %L::jsonb)', token_rotation.citus_tag(v_run),
                   jsonb_build_object('state', v_run.state, 'hold_reason', v_run.hold_reason,
                                      'hold_until', v_run.hold_until,
                                      'options', v_run.options - ARRAY['column', 'format', 'prefix', 'previous_column',
                                                                       'rotated_at_column', 'where', 'older_than',
                                                                       'rotated_before', 'fill_null', 'citus']))) AS n
         WHERE NOT n.ok
    LOOP
        RAISE WARNING 'node %:% did not follow run % (its shards follow at the next wave): %', v_answer.node,
                      v_answer.port, p_run_id, token_rotation.redact(v_answer.result);
    END LOOP;
END
$$;

COMMENT ON FUNCTION token_rotation.citus_control(bigint) IS
    'Sends a distributed run''s state, hold and retunable options to its shards'' runs on every node.';
