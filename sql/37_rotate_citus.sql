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

-- token_rotation_internal.rotate_citus(...): rotate() of a Citus distributed table on the coordinator (rotate() hands
-- over to it after its checks, with the options it resolved): see above. Each wave: lock the
-- unfinished shards' metadata, take the census of every node's runs of this run, book it, then send up to
-- p_workers shard CALLs per node at once and book what they did; COMMIT between waves. A CALL of a shard that
-- fails stops the run's CALL with the node and the shard named; the same CALL again resumes. Stops at p_stop_at,
-- after p_max_batches batches per shard CALL (one wave), or when the run is paused or cancelled.
CREATE OR REPLACE PROCEDURE token_rotation_internal.rotate_citus(
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
    PERFORM token_rotation_internal.pin_settings();
    v_kind := (SELECT c.kind FROM token_rotation_internal.citus_shards(p_table) AS c LIMIT 1);
    IF v_kind = 'reference' THEN
        RAISE EXCEPTION '% is a Citus reference table: its copy on every node must hold the same tokens', p_table
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'Citus refuses a volatile function such as gen_random_uuid() in its UPDATE, and a run '
                           'per copy would give each node other tokens',
                  HINT = 'keep tokens in a distributed table, or undistribute_table() it, rotate it, and '
                         'create_reference_table() it again';
    END IF;
    IF token_rotation_internal.citus_node() IS DISTINCT FROM 'coordinator' THEN
        RAISE EXCEPTION '% is a Citus distributed table: rotate it from the coordinator', p_table
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'connect to the coordinator: its CALL rotates every shard on the node that holds it';
    END IF;
    EXECUTE pg_catalog.format('SELECT count(*) FROM %s', p_table) INTO v_rows;  -- with the caller's rights
    v_run := token_rotation_internal.citus_open_run(p_table, (p_options->>'column')::name, p_key, p_options, v_rows,
                                           p_after_run);
    COMMIT;
    PERFORM token_rotation_internal.pin_settings();
    IF v_run.run_id IS NULL THEN
        RETURN;
    END IF;
    v_tag := token_rotation_internal.citus_tag(v_run);
    LOOP
        -- the run as other sessions left it (pause, cancel): read, not locked, so that they never wait for a wave
        SELECT * INTO v_run FROM token_rotation.runs r WHERE r.run_id = v_run.run_id;
        IF v_run.state = 'paused' THEN  -- its shards' runs pause too (citus_control()); this CALL waits
            COMMIT;
            PERFORM token_rotation_internal.pin_settings();
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
            SELECT * FROM token_rotation_internal.citus_on_nodes(p_table, pg_catalog.format(
                'SELECT token_rotation_internal.citus_census(%L::jsonb)', v_tag))
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
          JOIN token_rotation_internal.citus_shards(p_table) AS c ON c.shardid = s.shardid
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
            v_run := token_rotation_internal.citus_record(v_run.run_id, v_booked, NULL, NULL);
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
               array_agg(token_rotation_internal.citus_shard_call(w.shard, v_run.options, v_run.key_columns, p_max_batches,
                         p_trust_table_owner, p_stop_at,
                         v_tag || jsonb_build_object('shard', w.shardid)))
                   AS commands
          INTO v_wave
          FROM (SELECT s.shardid, c.shard, c.node, c.port,
                       row_number() OVER (PARTITION BY c.node, c.port ORDER BY s.shardid) AS n
                  FROM token_rotation.shards s
                  JOIN token_rotation_internal.citus_shards(p_table) AS c ON c.shardid = s.shardid
                 WHERE s.run_id = v_run.run_id
                   AND NOT EXISTS (SELECT FROM jsonb_array_elements(v_census) AS e  -- finished, or another session's
                                    WHERE (e->>'shardid')::bigint = s.shardid
                                      AND (e->>'state' = 'finished' OR (e->>'busy')::boolean))) AS w
         WHERE w.n <= p_workers;
        IF v_wave.ids IS NULL THEN  -- every unfinished shard is another session's now: wait for them
            v_run := token_rotation_internal.citus_record(v_run.run_id, v_booked, NULL, NULL);
            COMMIT;
            PERFORM token_rotation_internal.pin_settings();
            PERFORM pg_catalog.pg_sleep(1);
            CONTINUE;
        END IF;
        IF NOT p_quiet THEN
            RAISE NOTICE 'run %: % of % shard(s) done; rotating % shard(s) on % node(s)', v_run.run_id,
                v_run.slices - v_left, v_run.slices, cardinality(v_wave.ids),
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
        v_run := token_rotation_internal.citus_record(v_run.run_id, v_booked, pg_catalog.clock_timestamp() - v_started, NULL);
        COMMIT;
        PERFORM token_rotation_internal.pin_settings();
        EXIT WHEN v_failed IS NOT NULL OR p_max_batches IS NOT NULL;
    END LOOP;
    IF v_run.state = 'cancelled' AND v_failed IS NULL THEN  -- and so are its shards' runs, on every node
        FOR v_node, v_port, v_ok, v_text IN
            SELECT * FROM token_rotation_internal.citus_on_nodes(p_table, pg_catalog.format(
                'SELECT token_rotation_internal.citus_cancel(%L::jsonb)', v_tag))
        LOOP
            IF NOT v_ok THEN
                v_failed := pg_catalog.format('run %s is cancelled, but its shards'' runs on node %s:%s could not '
                                              'be: %s', v_run.run_id, v_node, v_port, v_text);
            END IF;
        END LOOP;
    END IF;
    IF v_failed IS NOT NULL THEN
        ROLLBACK;
        PERFORM token_rotation_internal.pin_settings();
        v_run := token_rotation_internal.citus_record(v_run.run_id, NULL, NULL, v_failed);
        COMMIT;
        PERFORM token_rotation_internal.pin_settings();
        RAISE EXCEPTION 'rotation of % stopped: %', p_table,
                        token_rotation_internal.redact(v_failed, v_run.options->>'format', v_run.options->>'prefix')
            USING ERRCODE = 'connection_exception',
                  DETAIL = pg_catalog.format('%s of %s rows done; every committed batch is kept on its node',
                                             v_run.rows_done, v_run.rows_expected),
                  HINT = 'the same CALL resumes: each shard goes on from its checkpoint on its node';
    END IF;
    IF NOT p_quiet THEN
        RAISE NOTICE 'run %: % (% of % shards)', v_run.run_id, v_run.state,
            (SELECT count(*) FROM token_rotation.shards s WHERE s.run_id = v_run.run_id AND s.done), v_run.slices;
    END IF;
END
$$;

COMMENT ON PROCEDURE token_rotation_internal.rotate_citus(regclass, jsonb, name[], integer, integer, boolean, bigint, boolean,
                                                timestamptz) IS
    'rotate() of a Citus distributed table on the coordinator: each shard by a run on its node, in waves of '
    'at most p_workers sessions per node, exactly once per shard.';
