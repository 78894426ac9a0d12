-- ==== sql/00_schema.sql ====
-- token_rotation schema: everything the tool owns lives here and nowhere else.
-- Installed by migrations/ (alembic upgrade head, or `token-rotation install`); removed by its downgrade.
CREATE SCHEMA IF NOT EXISTS token_rotation;

COMMENT ON SCHEMA token_rotation IS
    'token-rotation: resumable exactly-once rotation of uuid tokens. CALL token_rotation.rotate(''public.tickets'');';

-- ==== sql/01_runs.sql ====
-- token_rotation.runs: one row per rotation run of one table.
-- A run fixes its key range when it starts; it is "open" (active or paused) until it is finished or cancelled.
-- At most one open run per table: the partial unique index below, which survives a crashed session.
CREATE TABLE token_rotation.runs (
      run_id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY
    , target              regclass    NOT NULL
    , token_column        name        NOT NULL
    , key_column          name        NOT NULL
    , key_type            regtype     NOT NULL
    , state               text        NOT NULL DEFAULT 'active'
    , workers             integer     NOT NULL DEFAULT 1
    , batch_size          integer     NOT NULL
    , key_min             text
    , key_max             text
    , rows_expected       bigint      NOT NULL DEFAULT 0
    , rows_expected_exact boolean     NOT NULL DEFAULT true
    , rows_done           bigint      NOT NULL DEFAULT 0
    , elapsed             interval    NOT NULL DEFAULT '0'
    , started_at          timestamptz NOT NULL DEFAULT clock_timestamp()
    , finished_at         timestamptz
    , state_changed_at    timestamptz NOT NULL DEFAULT clock_timestamp()
    , last_error          text
    , last_error_at       timestamptz
    , CONSTRAINT runs_state_check CHECK (state IN ('active', 'paused', 'finished', 'cancelled'))
    , CONSTRAINT runs_workers_check CHECK (workers >= 1)
    , CONSTRAINT runs_finished_check CHECK ((state = 'finished') = (finished_at IS NOT NULL))
);

CREATE UNIQUE INDEX runs_one_open_run_per_table
    ON token_rotation.runs (target) WHERE state IN ('active', 'paused');

COMMENT ON TABLE token_rotation.runs IS
    'One row per rotation run. state: active (resumable), paused, finished, cancelled. '
    'elapsed and rows_done are brought up to date when a CALL ends; token_rotation.progress has live numbers.';
COMMENT ON COLUMN token_rotation.runs.key_max IS
    'Largest key when the run started (text form): rows inserted later already have fresh tokens.';
COMMENT ON COLUMN token_rotation.runs.elapsed IS
    'Working time accumulated over every CALL of this run (resumes included, pauses and gaps excluded).';

-- ==== sql/02_slices.sql ====
-- token_rotation.slices: the key range of a run cut into disjoint slices, one per worker, each with its
-- own checkpoint. A slice covers the keys k with lo < k <= hi (lo NULL: from the smallest key).
-- last_key is the checkpoint: it is written in the same transaction as the batch that reached it.
CREATE TABLE token_rotation.slices (
      slice_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY
    , run_id        bigint      NOT NULL REFERENCES token_rotation.runs ON DELETE CASCADE
    , slice_no      integer     NOT NULL
    , lo            text
    , hi            text
    , last_key      text
    , rows_expected bigint      NOT NULL DEFAULT 0
    , rows_done     bigint      NOT NULL DEFAULT 0
    , batches_done  integer     NOT NULL DEFAULT 0
    , batch_size    integer
    , elapsed       interval    NOT NULL DEFAULT '0'
    , done          boolean     NOT NULL DEFAULT false
    , backend_pid   integer
    , heartbeat_at  timestamptz
    , throttled     text
    , CONSTRAINT slices_run_slice_no_key UNIQUE (run_id, slice_no)
);

COMMENT ON TABLE token_rotation.slices IS
    'Disjoint key slices of a run (lo, hi], one worker each; last_key is the committed checkpoint.';
COMMENT ON COLUMN token_rotation.slices.throttled IS
    'Why the worker is waiting right now (paused, replica lag, lock retry), NULL when it is working.';

-- ==== sql/03_batches.sql ====
-- token_rotation.batches: the progress log, one row per committed batch, written in the batch's own
-- transaction. Each batch covers the keys k with after_key < k <= last_key (after_key NULL: from the start
-- of its slice), so a finished slice is a gap-free, overlap-free chain of batches (see token_rotation.verify).
CREATE TABLE token_rotation.batches (
      slice_id      bigint      NOT NULL REFERENCES token_rotation.slices ON DELETE CASCADE
    , batch_no      integer     NOT NULL
    , run_id        bigint      NOT NULL REFERENCES token_rotation.runs ON DELETE CASCADE
    , after_key     text
    , last_key      text
    , rows          integer     NOT NULL
    , batch_size    integer     NOT NULL
    , started_at    timestamptz NOT NULL
    , finished_at   timestamptz NOT NULL
    , retries       integer     NOT NULL DEFAULT 0
    , PRIMARY KEY (slice_id, batch_no)
);

CREATE INDEX batches_run_id_finished_at ON token_rotation.batches (run_id, finished_at);

COMMENT ON TABLE token_rotation.batches IS
    'Progress log: one row per committed batch (after_key, last_key], written atomically with the batch.';

-- ==== sql/10_lock_space.sql ====
-- token_rotation.lock_space(): the first key of every advisory lock the tool takes, so that its locks
-- never collide with an application's. Worker locks: (lock_space(), slice_id), session level, one per slice;
-- claim locks: (lock_space() + 1, table oid), transaction level, held while a CALL picks its slice.
CREATE FUNCTION token_rotation.lock_space()
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 1953198708 $$;  -- 'tkrt'

COMMENT ON FUNCTION token_rotation.lock_space() IS
    'Advisory lock space of token-rotation: pg_locks.classid of its worker locks (objid = slice_id).';

-- ==== sql/10_slice_holder.sql ====
-- token_rotation.slice_holder(slice_id): the backend pid working on a slice right now, read from the session
-- advisory lock (lock_space(), slice_id) it holds; NULL when nobody does. The one place that knows how a
-- worker's lock looks in pg_locks: holders(), the progress view and rotate() ask it.
--   SELECT slice_no, token_rotation.slice_holder(slice_id) FROM token_rotation.slices WHERE run_id = 42;
CREATE FUNCTION token_rotation.slice_holder(p_slice_id bigint)
RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.pid
      FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
       AND l.classid = token_rotation.lock_space()::oid AND l.objid = p_slice_id::integer::oid
     LIMIT 1
$$;

COMMENT ON FUNCTION token_rotation.slice_holder(bigint) IS
    'Pid of the backend working on a slice (holding its advisory lock), NULL when nobody does.';

-- ==== sql/11_describe_target.sql ====
-- token_rotation.describe_target(table, column): checks that a table can be rotated and returns its
-- quoted name, its single-column primary key and that key's type; also that the caller may read the key and
-- update the token, and that no row-level security policy or INSTEAD rule hides rows from the UPDATE. Every refusal is an error with
-- an ERRCODE, the values in DETAIL and the next step in HINT. Called by rotate() before it changes anything.
--   SELECT * FROM token_rotation.describe_target('public.tickets', 'token');
CREATE FUNCTION token_rotation.describe_target(
      p_table       regclass
    , p_column      name DEFAULT 'token'
    , OUT qualified  text
    , OUT key_column name
    , OUT key_type   regtype
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_relkind   "char";
    v_coltype   regtype;
    v_generated "char";
    v_pk_cols   integer;
    v_pk_attnum smallint;
    v_rules     text;
BEGIN
    IF p_table IS NULL THEN
        RAISE EXCEPTION 'table must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'pass the table, e.g. ''public.tickets''';
    END IF;
    IF p_column IS NULL THEN
        RAISE EXCEPTION 'token column must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'pass the token column with p_column';
    END IF;

    SELECT c.relkind, format('%I.%I', n.nspname, c.relname)
      INTO v_relkind, qualified
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table with oid % does not exist', p_table::oid
            USING ERRCODE = 'undefined_table', HINT = 'pass the table by name, e.g. ''public.tickets''';
    END IF;
    IF v_relkind = 'p' THEN
        RAISE EXCEPTION '% is a partitioned table', qualified
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'a run rotates one table; its partitions are tables of their own',
                  HINT = format('rotate each partition: SELECT format(''CALL token_rotation.rotate(%%L);'', relid) '
                                'FROM pg_partition_tree(%L) WHERE isleaf \gexec', qualified);
    END IF;
    IF v_relkind <> 'r' THEN
        RAISE EXCEPTION '% is not a table', qualified
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = format('relkind is %L; only ordinary tables (relkind r) can be rotated', v_relkind),
                  HINT = 'pass the table behind the view or materialized view';
    END IF;

    SELECT a.atttypid::regtype, a.attgenerated
      INTO v_coltype, v_generated
      FROM pg_attribute a
     WHERE a.attrelid = p_table AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column % of % does not exist', quote_ident(p_column), qualified
            USING ERRCODE = 'undefined_column', HINT = 'pass the token column with p_column';
    END IF;
    IF v_coltype <> 'uuid'::regtype THEN
        RAISE EXCEPTION 'column % of % is not of type uuid', quote_ident(p_column), qualified
            USING ERRCODE = 'datatype_mismatch', DETAIL = format('its type is %s', v_coltype),
                  HINT = 'pass the token column with p_column';
    END IF;
    IF v_generated <> '' THEN
        RAISE EXCEPTION 'column % of % is a generated column', quote_ident(p_column), qualified
            USING ERRCODE = 'wrong_object_type', HINT = 'pass a stored uuid column with p_column';
    END IF;

    SELECT i.indnatts, i.indkey[0]
      INTO v_pk_cols, v_pk_attnum
      FROM pg_index i
     WHERE i.indrelid = p_table AND i.indisprimary;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % has no primary key', qualified
            USING ERRCODE = 'invalid_table_definition',
                  DETAIL = 'the rotation walks the table in primary-key order and checkpoints the last key',
                  HINT = 'add a single-column primary key';
    END IF;
    IF v_pk_cols <> 1 THEN
        RAISE EXCEPTION 'primary key of % has % columns', qualified, v_pk_cols
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'only a single-column primary key can serve as the checkpoint',
                  HINT = 'add a single-column unique key and make it the primary key';
    END IF;

    SELECT a.attname, a.atttypid::regtype
      INTO key_column, key_type
      FROM pg_attribute a
     WHERE a.attrelid = p_table AND a.attnum = v_pk_attnum;
    IF key_column = p_column THEN
        RAISE EXCEPTION 'column % of % is its primary key', quote_ident(p_column), qualified
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'the rotation walks the primary key, so it cannot rewrite it',
                  HINT = 'rotate a token column that is not the primary key';
    END IF;

    -- rotate() runs with the caller's rights (SECURITY INVOKER): the caller reads the key, updates the token
    IF NOT has_column_privilege(p_table, key_column, 'SELECT')
       OR NOT has_column_privilege(p_table, p_column, 'UPDATE') THEN
        RAISE EXCEPTION 'permission denied to rotate %', qualified
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('role %s needs SELECT on column %s and UPDATE on column %s',
                                  current_user, quote_ident(key_column), quote_ident(p_column)),
                  HINT = format('GRANT SELECT, UPDATE ON %s TO %I; the full recipe is in sql/examples/grants.sql',
                                qualified, current_user);
    END IF;
    -- an INSTEAD rule on UPDATE replaces the batch's UPDATE: the run would finish with tokens unchanged
    SELECT string_agg(quote_ident(r.rulename), ', ' ORDER BY r.rulename) INTO v_rules
      FROM pg_rewrite r
     WHERE r.ev_class = p_table AND r.ev_type = '2' AND r.is_instead AND r.ev_enabled IN ('O', 'A');
    IF v_rules IS NOT NULL THEN
        RAISE EXCEPTION 'table % has an INSTEAD rule on UPDATE', qualified
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = format('rule(s) %s would replace each batch''s UPDATE: tokens would stay', v_rules),
                  HINT = format('disable it while rotating: ALTER TABLE %s DISABLE RULE ...', qualified);
    END IF;
    -- rows that row-level security hides from the UPDATE would keep their token while the run counts them
    IF row_security_active(p_table) THEN
        RAISE EXCEPTION 'row-level security of % applies to role %', qualified, current_user
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'rows its policies hide would keep their old token while the run reports them done',
                  HINT = 'rotate as the table owner (without FORCE ROW LEVEL SECURITY) or as a role with BYPASSRLS';
    END IF;
END
$$;

COMMENT ON FUNCTION token_rotation.describe_target(regclass, name) IS
    'Checks a table for rotation; returns its quoted name, primary-key column and key type, or raises why not.';

-- ==== sql/12_plan_slices.sql ====
-- token_rotation.plan_slices(table, key, workers): cuts the key range (.., p_key_max] of a table into at most
-- p_workers disjoint slices (lo, hi] of about equal row counts, from quantiles of the keys themselves, so that
-- large holes in the key space do not unbalance the workers. Tables of up to p_exact_limit rows (estimated) are
-- counted exactly and split at the keys of rank i/N (a walk of the primary-key index, no sort); larger ones are
-- sampled (TABLESAMPLE SYSTEM, about 200,000 rows) and their row counts estimated. Used by rotate() when a run
-- starts; a DBA can call it to preview a plan:
--   SELECT * FROM token_rotation.plan_slices('public.tickets', 'id', 4, (SELECT max(id)::text FROM tickets));
CREATE FUNCTION token_rotation.plan_slices(
      p_table        regclass
    , p_key          name
    , p_workers      integer
    , p_key_max      text
    , p_exact_limit  bigint DEFAULT 20000000
)
RETURNS TABLE (slice_no integer, lo text, hi text, rows_expected bigint, exact boolean)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_target    text;
    v_key_type  regtype;
    v_estimate  double precision;
    v_sample    text := '';
    v_exact     boolean;
    v_fractions double precision[];
    v_splits    text[];
    v_bounds    text[];
    v_split     text;
    v_total     bigint;
    v_counts    bigint[] := '{}';
    v_pos       bigint;
    v_prev_pos  bigint := 0;
    i           integer;
BEGIN
    IF p_workers IS NULL OR p_workers < 1 THEN
        RAISE EXCEPTION 'workers must be at least 1, not %', p_workers
            USING ERRCODE = 'invalid_parameter_value', HINT = 'use one worker per core at most';
    END IF;
    SELECT format('%I.%I', n.nspname, c.relname),
           CASE WHEN c.reltuples >= 0 THEN c.reltuples
                ELSE pg_relation_size(c.oid) / 100.0 END  -- never analyzed: assume ~100 bytes a row
      INTO v_target, v_estimate
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table;
    SELECT a.atttypid::regtype INTO v_key_type
      FROM pg_attribute a WHERE a.attrelid = p_table AND a.attname = p_key AND NOT a.attisdropped;

    v_exact := v_estimate <= p_exact_limit;
    v_bounds := ARRAY[NULL::text];

    IF v_exact THEN
        -- exact: count the rows, then walk the primary-key index to the key at each i/N position, each walk
        -- starting at the previous split (keyset + OFFSET), so the whole index is read about once and nothing
        -- is sorted; the slices' row counts follow from the positions
        EXECUTE format('SELECT count(*) FROM ONLY %2$s WHERE %1$I <= $1::%3$s', p_key, v_target, v_key_type)
           INTO v_total USING p_key_max;
        FOR i IN 1 .. p_workers - 1 LOOP
            v_pos := v_total * i / p_workers;
            CONTINUE WHEN v_pos <= v_prev_pos OR v_pos >= v_total;
            IF cardinality(v_bounds) = 1 THEN
                EXECUTE format('SELECT t.%1$I::text FROM ONLY %2$s AS t ORDER BY t.%1$I OFFSET $1 LIMIT 1',
                               p_key, v_target)
                   INTO v_split USING v_pos - v_prev_pos - 1;
            ELSE
                EXECUTE format('SELECT t.%1$I::text FROM ONLY %2$s AS t WHERE t.%1$I > $1::%3$s '
                               'ORDER BY t.%1$I OFFSET $2 LIMIT 1', p_key, v_target, v_key_type)
                   INTO v_split USING v_bounds[cardinality(v_bounds)], v_pos - v_prev_pos - 1;
            END IF;
            v_bounds := v_bounds || v_split;
            v_counts := v_counts || (v_pos - v_prev_pos);
            v_prev_pos := v_pos;
        END LOOP;
        v_bounds := v_bounds || p_key_max;
        v_counts := v_counts || (v_total - v_prev_pos);
    ELSE
        -- sampled: split keys are the i/N quantiles of a block sample, deduplicated, each below the largest key
        v_sample := format(' TABLESAMPLE SYSTEM (%s)', least(100.0, 100.0 * 200000 / v_estimate));
        IF p_workers > 1 AND p_key_max IS NOT NULL THEN
            SELECT array_agg(g::double precision / p_workers ORDER BY g)
              INTO v_fractions FROM generate_series(1, p_workers - 1) AS g;
            EXECUTE format('SELECT (percentile_disc($1) WITHIN GROUP (ORDER BY %1$I))::text[] '
                           'FROM ONLY %2$s%3$s WHERE %1$I <= $2::%4$s', p_key, v_target, v_sample, v_key_type)
               INTO v_splits USING v_fractions, p_key_max;
        END IF;
        FOREACH v_split IN ARRAY coalesce(v_splits, '{}') LOOP
            CONTINUE WHEN v_split IS NULL OR v_split = v_bounds[cardinality(v_bounds)] OR v_split = p_key_max;
            v_bounds := v_bounds || v_split;
        END LOOP;
        v_bounds := v_bounds || p_key_max;
        v_total := v_estimate::bigint;
    END IF;

    FOR i IN 1 .. cardinality(v_bounds) - 1 LOOP
        slice_no := i;
        lo := v_bounds[i];
        hi := v_bounds[i + 1];
        exact := v_exact;
        rows_expected := CASE WHEN v_exact THEN v_counts[i] ELSE v_total / (cardinality(v_bounds) - 1) END;
        RETURN NEXT;
    END LOOP;
END
$$;

COMMENT ON FUNCTION token_rotation.plan_slices(regclass, name, integer, text, bigint) IS
    'Cuts a table''s key range into at most N balanced slices (lo, hi] from key quantiles; rows counted or estimated.';

-- ==== sql/13_next_batch_size.sql ====
-- token_rotation.next_batch_size(...): the adaptive batch-size controller, a pure function.
-- From the smoothed time per row of the batches so far it picks the batch that would take p_target seconds,
-- changing the current size by at most p_max_step times either way, and keeps it within [p_min, p_max].
-- rotate() calls it after each batch when p_target_batch_time is given:
--   SELECT token_rotation.next_batch_size(3000, 0.00002, 0.5, 100, 100000);  -- 6000: doubled at most
CREATE FUNCTION token_rotation.next_batch_size(
      p_current          integer
    , p_seconds_per_row  double precision
    , p_target           double precision
    , p_min              integer          DEFAULT 100
    , p_max              integer          DEFAULT 100000
    , p_max_step         double precision DEFAULT 2.0
)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_seconds_per_row IS NULL OR p_seconds_per_row <= 0 OR p_target IS NULL OR p_target <= 0
            THEN least(greatest(p_current, p_min), p_max)
        ELSE least(greatest(
                 round(least(greatest(p_target / p_seconds_per_row,
                                      p_current / p_max_step),
                             p_current * p_max_step))::integer,
                 p_min), p_max)
    END
$$;

COMMENT ON FUNCTION token_rotation.next_batch_size(integer, double precision, double precision, integer, integer,
                                                   double precision) IS
    'Adaptive batch size: target seconds / smoothed seconds per row, at most p_max_step times the current size '
    'either way, within [p_min, p_max].';

-- ==== sql/14_replication_lag.sql ====
-- token_rotation.replication_lag(): bytes of WAL that the slowest replica (pg_stat_replication) or active
-- replication slot has not yet replayed or confirmed; 0 when there is none. rotate() pauses while this is over
-- p_max_replication_lag, and also while this query fails (it prefers to wait rather than race a replica).
--   SELECT pg_size_pretty(token_rotation.replication_lag());
CREATE FUNCTION token_rotation.replication_lag()
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT greatest(
        (SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(replay_lsn, flush_lsn, write_lsn, sent_lsn)))
           FROM pg_stat_replication),
        (SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(confirmed_flush_lsn, restart_lsn)))
           FROM pg_replication_slots WHERE active),
        0)::bigint
$$;

COMMENT ON FUNCTION token_rotation.replication_lag() IS
    'Largest replication lag in bytes over pg_stat_replication and active slots (0 without replicas).';

-- ==== sql/15_holders.sql ====
-- token_rotation.holders(run_id): the sessions working on a run right now, one line each
-- ("backend 4711 (token-rotation, active since 10:02:11)"), read from the advisory locks they hold.
-- Used in the error a second CALL on a busy table raises; handy in psql too:
--   SELECT token_rotation.holders(run_id) FROM token_rotation.runs WHERE state = 'active';
CREATE FUNCTION token_rotation.holders(p_run_id bigint)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(format('backend %s (%s, slice %s, %s since %s)',
                             h.pid, coalesce(nullif(a.application_name, ''), 'no application_name'),
                             s.slice_no, coalesce(a.state, 'unknown'),
                             to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS')), '; ' ORDER BY s.slice_no)
      FROM token_rotation.slices s
     CROSS JOIN LATERAL (SELECT token_rotation.slice_holder(s.slice_id) AS pid) h
      LEFT JOIN pg_stat_activity a ON a.pid = h.pid
     WHERE s.run_id = p_run_id AND h.pid IS NOT NULL
$$;

COMMENT ON FUNCTION token_rotation.holders(bigint) IS
    'Backends holding the worker locks of a run, as one line of text (NULL when nobody works on it).';

-- ==== sql/16_start_run.sql ====
-- token_rotation.start_run(table, column, batch_size, workers): opens a new run of a table: fixes its key
-- range (smallest and largest key now), plans its slices and counts (or estimates) the rows to rotate.
-- An empty table gives a run that is finished at once. Called by rotate(), inside its first transaction,
-- after describe_target() has accepted the table; it does not lock anything itself.
CREATE FUNCTION token_rotation.start_run(
      p_table       regclass
    , p_column      name
    , p_batch_size  integer
    , p_workers     integer
)
RETURNS token_rotation.runs
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_target   text;
    v_key      name;
    v_key_type regtype;
    v_min      text;
    v_max      text;
    v_run      token_rotation.runs;
    v_plan     record;
    v_workers  integer := 0;
    v_rows     bigint := 0;
    v_exact    boolean := true;
BEGIN
    SELECT d.qualified, d.key_column, d.key_type INTO v_target, v_key, v_key_type
      FROM token_rotation.describe_target(p_table, p_column) AS d;
    -- ORDER BY ... LIMIT 1 rather than min()/max(): it works for every btree type (there is no min(uuid))
    EXECUTE format('SELECT (SELECT t.%1$I::text FROM ONLY %2$s AS t ORDER BY t.%1$I LIMIT 1), '
                   '(SELECT t.%1$I::text FROM ONLY %2$s AS t ORDER BY t.%1$I DESC LIMIT 1)', v_key, v_target)
       INTO v_min, v_max;

    INSERT INTO token_rotation.runs (target, token_column, key_column, key_type, batch_size, key_min, key_max)
    VALUES (p_table, p_column, v_key, v_key_type, p_batch_size, v_min, v_max)
    RETURNING * INTO v_run;

    IF v_max IS NULL THEN
        UPDATE token_rotation.runs
           SET state = 'finished', finished_at = clock_timestamp(), state_changed_at = clock_timestamp()
         WHERE run_id = v_run.run_id
        RETURNING * INTO v_run;
        RETURN v_run;
    END IF;

    FOR v_plan IN SELECT * FROM token_rotation.plan_slices(p_table, v_key, p_workers, v_max) LOOP
        INSERT INTO token_rotation.slices (run_id, slice_no, lo, hi, rows_expected)
        VALUES (v_run.run_id, v_plan.slice_no, v_plan.lo, v_plan.hi, v_plan.rows_expected);
        v_workers := v_workers + 1;
        v_rows := v_rows + v_plan.rows_expected;
        v_exact := v_plan.exact;
    END LOOP;

    UPDATE token_rotation.runs
       SET workers = v_workers, rows_expected = v_rows, rows_expected_exact = v_exact
     WHERE run_id = v_run.run_id
    RETURNING * INTO v_run;
    RETURN v_run;
END
$$;

COMMENT ON FUNCTION token_rotation.start_run(regclass, name, integer, integer) IS
    'Opens a new run: fixes the key range, plans the slices, counts the rows. Called by rotate().';

-- ==== sql/17_throttle_reason.sql ====
-- token_rotation.throttle_reason(state, lag, max_lag, lag_error): why a worker must wait before its next batch,
-- or NULL when it may go on. A pure function of what rotate() has just read, so that the decision is tested
-- without a replica: 'paused' while the run is paused; 'replica lag 120 MB' while the measured lag exceeds
-- p_max_lag; 'replica lag unknown (SQLSTATE)' when p_max_lag is set but the lag could not be measured (it
-- prefers to wait rather than race a replica it cannot see). rotate() writes the reason into slices.throttled.
--   SELECT token_rotation.throttle_reason('active', 125829120, 67108864, NULL);  -- replica lag 120 MB
CREATE FUNCTION token_rotation.throttle_reason(
      p_state      text
    , p_lag        bigint
    , p_max_lag    bigint
    , p_lag_error  text DEFAULT NULL
)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_state = 'paused' THEN 'paused'
        WHEN p_max_lag IS NULL THEN NULL
        WHEN p_lag_error IS NOT NULL OR p_lag IS NULL
            THEN format('replica lag unknown (%s)', coalesce(p_lag_error, 'no value'))
        WHEN p_lag > p_max_lag THEN format('replica lag %s', pg_catalog.pg_size_pretty(p_lag))
    END
$$;

COMMENT ON FUNCTION token_rotation.throttle_reason(text, bigint, bigint, text) IS
    'Why a worker waits before its next batch (paused, replica lag N, replica lag unknown), NULL to go on.';

-- ==== sql/18_pin_settings.sql ====
-- token_rotation.pin_settings(search_path): pins, for the current transaction, the settings rotate() relies
-- on: the search_path it computed (pg_catalog first, the caller's schemas, pg_temp last), and the settings
-- that shape the text form of keys, since checkpoints are stored as text (a run started under DateStyle
-- 'SQL, DMY' and resumed under 'SQL, MDY' would otherwise read its checkpoint 01/02 as January 2nd; with
-- extra_float_digits 0 a float key would be rounded). rotate() calls it after every COMMIT, because a
-- procedure that COMMITs cannot carry a SET clause and SET LOCAL ends with each transaction.
-- It has no SET clause itself on purpose: a function's SET clause would undo these settings on return.
CREATE FUNCTION token_rotation.pin_settings(p_search_path text)
RETURNS void
LANGUAGE sql VOLATILE
AS $$
    SELECT pg_catalog.set_config('search_path', p_search_path, true),
           pg_catalog.set_config('datestyle', 'ISO, YMD', true),
           pg_catalog.set_config('intervalstyle', 'postgres', true),
           pg_catalog.set_config('extra_float_digits', '1', true);
$$;

COMMENT ON FUNCTION token_rotation.pin_settings(text) IS
    'Pins search_path, DateStyle, IntervalStyle and extra_float_digits for the current transaction (rotate()).';

-- ==== sql/20_rotate.sql ====
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

-- ==== sql/30_progress.sql ====
-- token_rotation.progress: one row per run with live numbers: rows done of the total, percent, working time
-- (accumulated over every CALL, pauses excluded), rate, a simple ETA, and the sessions working on it now.
-- The driver polls it; a DBA reads it in psql:
--   SELECT run_id, table_name, state, percent, rows_per_second, eta FROM token_rotation.progress;
CREATE VIEW token_rotation.progress AS
SELECT r.run_id
     , r.target                                    AS table_name
     , r.token_column
     , r.state
     , s.active_workers
     , r.workers
     , coalesce(s.rows_done, r.rows_done)          AS rows_done
     , r.rows_expected                             AS rows_total
     , r.rows_expected_exact                       AS rows_total_exact
     , CASE WHEN r.state = 'finished' THEN 100.0
            ELSE least(99.9, round(100.0 * coalesce(s.rows_done, r.rows_done) / greatest(r.rows_expected, 1), 1))
       END                                         AS percent
     , coalesce(s.elapsed, r.elapsed)              AS elapsed
     , round(coalesce(s.rows_done, r.rows_done)
             / greatest(extract(epoch FROM coalesce(s.elapsed, r.elapsed)), 0.001))::bigint AS rows_per_second
     , CASE WHEN r.state IN ('active', 'paused') AND coalesce(s.rows_done, 0) > 0
            THEN make_interval(secs => round(greatest(r.rows_expected - s.rows_done, 0)
                                             * extract(epoch FROM s.elapsed) / s.rows_done))
       END                                         AS eta
     , s.batches_done
     , s.throttled
     , r.started_at
     , r.finished_at
     , s.last_batch_at
     , r.last_error
     , coalesce(s.slices_left, 0)                  AS slices_left
     , coalesce(s.free_slices, 0)                  AS free_slices
  FROM token_rotation.runs r
  LEFT JOIN LATERAL (
        SELECT sum(sl.rows_done)::bigint AS rows_done
             , sum(sl.batches_done)::bigint AS batches_done
             , max(sl.heartbeat_at) AS last_batch_at
             , string_agg(DISTINCT sl.throttled, ', ') AS throttled
             , count(*) FILTER (WHERE lk.pid IS NOT NULL)::integer AS active_workers
             , count(*) FILTER (WHERE NOT sl.done)::integer AS slices_left
             , count(*) FILTER (WHERE NOT sl.done AND lk.pid IS NULL)::integer AS free_slices
             -- a working slice's time runs on between its batches; a paused one's does not
             , max(sl.elapsed + CASE WHEN lk.pid IS NOT NULL AND sl.throttled IS DISTINCT FROM 'paused'
                                     THEN greatest(clock_timestamp() - sl.heartbeat_at, '0') ELSE '0' END) AS elapsed
          FROM token_rotation.slices sl
         CROSS JOIN LATERAL (SELECT token_rotation.slice_holder(sl.slice_id) AS pid) lk
         WHERE sl.run_id = r.run_id
       ) s ON true;

COMMENT ON VIEW token_rotation.progress IS
    'Live progress per run: rows done/total, percent, working time, rows/s, ETA, active workers, throttling.';

-- ==== sql/31_control.sql ====
-- token_rotation.pause / resume / cancel (table): control a table's open run from any session. The workers
-- read the run's state before each batch: paused, they finish their batch and wait (holding no row lock,
-- their clock stopped); resumed, they go on; cancelled, they stop, and the next CALL starts a new run.
-- Each returns the run id it changed.
--   SELECT token_rotation.pause('public.tickets');  SELECT token_rotation.resume('public.tickets');
CREATE FUNCTION token_rotation.set_run_state(p_table regclass, p_state text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run_id bigint;
BEGIN
    IF p_state NOT IN ('active', 'paused', 'cancelled') THEN
        RAISE EXCEPTION 'cannot set a run to %', quote_literal(p_state)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'use pause(), resume() or cancel()';
    END IF;
    UPDATE token_rotation.runs
       SET state = p_state, state_changed_at = clock_timestamp()
     WHERE target = p_table AND state IN ('active', 'paused')
    RETURNING run_id INTO v_run_id;
    IF v_run_id IS NULL THEN
        RAISE EXCEPTION 'table % has no open run', p_table
            USING ERRCODE = 'no_data_found',
                  HINT = 'SELECT * FROM token_rotation.progress lists the runs and their states';
    END IF;
    RETURN v_run_id;
END
$$;

CREATE FUNCTION token_rotation.pause(p_table regclass) RETURNS bigint
LANGUAGE sql VOLATILE AS $$ SELECT token_rotation.set_run_state(p_table, 'paused') $$;

CREATE FUNCTION token_rotation.resume(p_table regclass) RETURNS bigint
LANGUAGE sql VOLATILE AS $$ SELECT token_rotation.set_run_state(p_table, 'active') $$;

CREATE FUNCTION token_rotation.cancel(p_table regclass) RETURNS bigint
LANGUAGE sql VOLATILE AS $$ SELECT token_rotation.set_run_state(p_table, 'cancelled') $$;

COMMENT ON FUNCTION token_rotation.set_run_state(regclass, text) IS
    'Sets the state of a table''s open run (active, paused, cancelled); used by pause(), resume(), cancel().';
COMMENT ON FUNCTION token_rotation.pause(regclass) IS
    'Pauses the open run of a table: its workers wait after their current batch. Returns the run id.';
COMMENT ON FUNCTION token_rotation.resume(regclass) IS
    'Resumes a paused run of a table: waiting workers go on. Returns the run id.';
COMMENT ON FUNCTION token_rotation.cancel(regclass) IS
    'Cancels the open run of a table: workers stop after their batch; the next CALL starts anew. Returns the run id.';

-- ==== sql/32_verify.sql ====
-- token_rotation.verify(run_id): checks, from the progress log, that a run covered its whole key range once:
-- its slices chain from the smallest key to key_max, each slice's batches chain from its lo to its hi with
-- no gap and no overlap, and the row counts agree; and that the token column holds no duplicate.
-- One row per check; every ok must be true:
--   SELECT * FROM token_rotation.verify(42);
CREATE FUNCTION token_rotation.verify(p_run_id bigint)
RETURNS TABLE (check_name text, ok boolean, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run   token_rotation.runs;
    v_bad   bigint;
    v_n     bigint;
    v_dup   bigint;
    v_index text;
BEGIN
    SELECT * INTO v_run FROM token_rotation.runs WHERE run_id = p_run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run % does not exist', p_run_id
            USING ERRCODE = 'no_data_found', HINT = 'SELECT run_id, table_name, state FROM token_rotation.progress';
    END IF;

    check_name := 'finished';
    ok := v_run.state = 'finished';
    detail := format('state %s', v_run.state);
    RETURN NEXT;

    -- slices: first lo NULL, each lo = the previous hi, last hi = key_max
    SELECT count(*) FILTER (WHERE lo IS DISTINCT FROM prev_hi OR (is_last AND hi IS DISTINCT FROM v_run.key_max)),
           count(*)
      INTO v_bad, v_n
      FROM (SELECT lo, hi, lag(hi) OVER w AS prev_hi, row_number() OVER w = count(*) OVER () AS is_last
              FROM token_rotation.slices WHERE run_id = p_run_id WINDOW w AS (ORDER BY slice_no)) s;
    check_name := 'slices cover the key range';
    ok := v_bad = 0 AND (v_n > 0 OR v_run.key_max IS NULL);
    detail := format('%s slice(s), %s out of line', v_n, v_bad);
    RETURN NEXT;

    -- batches: within each slice, each after_key = the previous last_key (the slice's lo for the first),
    -- and the last batch ends at the slice's hi
    SELECT count(*) FILTER (WHERE b.after_key IS DISTINCT FROM coalesce(b.prev_last, s.lo)
                               OR (b.is_last AND b.last_key IS DISTINCT FROM s.hi)),
           count(*)
      INTO v_bad, v_n
      FROM token_rotation.slices s
      JOIN (SELECT slice_id, after_key, last_key,
                   lag(last_key) OVER w AS prev_last,
                   row_number() OVER w = count(*) OVER (PARTITION BY slice_id) AS is_last
              FROM token_rotation.batches WHERE run_id = p_run_id
            WINDOW w AS (PARTITION BY slice_id ORDER BY batch_no)) b USING (slice_id)
     WHERE s.run_id = p_run_id;
    SELECT v_bad + count(*) INTO v_bad FROM token_rotation.slices s
     WHERE s.run_id = p_run_id AND NOT EXISTS (SELECT FROM token_rotation.batches b WHERE b.slice_id = s.slice_id);
    check_name := 'batches chain without gap or overlap';
    ok := v_bad = 0;
    detail := format('%s batch(es), %s out of line', v_n, v_bad);
    RETURN NEXT;

    SELECT count(*) INTO v_bad FROM token_rotation.slices s
     WHERE s.run_id = p_run_id
       AND s.rows_done <> (SELECT coalesce(sum(b.rows), 0) FROM token_rotation.batches b WHERE b.slice_id = s.slice_id);
    check_name := 'row counts agree with the log';
    ok := v_bad = 0;
    detail := format('%s rows logged, %s slice(s) disagree',
                     (SELECT coalesce(sum(rows), 0) FROM token_rotation.batches WHERE run_id = p_run_id), v_bad);
    RETURN NEXT;

    check_name := 'tokens are unique';
    SELECT format('enforced by unique index %s', i.indexrelid::regclass) INTO v_index
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = v_run.target AND i.indisunique AND i.indisvalid AND i.indnkeyatts = 1
       AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = v_run.token_column
     LIMIT 1;
    IF to_regclass(v_run.target::text) IS NULL THEN
        ok := false;
        detail := 'the table no longer exists';
    ELSIF v_index IS NOT NULL THEN  -- no need to read a billion tokens
        ok := true;
        detail := v_index;
    ELSE
        EXECUTE format('SELECT count(%1$I) - count(DISTINCT %1$I) FROM ONLY %2$s', v_run.token_column, v_run.target)
           INTO v_dup;
        ok := v_dup = 0;
        detail := format('%s duplicate(s)', v_dup);
    END IF;
    RETURN NEXT;
END
$$;

COMMENT ON FUNCTION token_rotation.verify(bigint) IS
    'Checks from the progress log that a run covered its key range once (no gap, no overlap) and tokens are unique.';

-- ==== sql/33_plan.sql ====
-- token_rotation.plan(table, column, batch_size, workers): what a run would do, without changing a token
-- (`token-rotation rotate --dry-run`): the rows to rotate (counted, or estimated on big tables), the slices and
-- batches, and an estimated duration from one sample batch that is really run (bound query and UPDATE, as
-- rotate() does them) and then rolled back. The sample holds row locks on one batch for the time it takes, like
-- a batch of the run. One row:
--   SELECT * FROM token_rotation.plan('public.tickets', p_batch_size => 3000, p_workers => 2);
CREATE FUNCTION token_rotation.plan(
      p_table        regclass
    , p_column       name     DEFAULT 'token'
    , p_batch_size   integer  DEFAULT 3000
    , p_workers      integer  DEFAULT 1
    , p_lock_timeout interval DEFAULT '1s'
)
RETURNS TABLE (
      table_name         text
    , key_column         name
    , rows_total         bigint
    , rows_exact         boolean
    , slices             integer
    , batch_size         integer
    , batches            bigint
    , sample_rows        bigint
    , sample_seconds     double precision
    , estimated_duration interval
)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key_type  regtype;
    v_max       text;
    v_upper     text;
    v_started   timestamptz;
    v_per_row   double precision;
    c_rollback  CONSTANT text := 'TRPLN';  -- the SQLSTATE that rolls the sample back
BEGIN
    IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 1000000 THEN
        RAISE EXCEPTION 'batch size must be between 1 and %', 1000000
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_batch_size is %s', p_batch_size),
                  HINT = 'the default 3000 suits most tables; larger batches hold row locks longer';
    END IF;
    IF p_workers IS NULL OR p_workers < 1 OR p_workers > 64 THEN
        RAISE EXCEPTION 'workers must be between 1 and %', 64
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_workers is %s', p_workers),
                  HINT = 'use at most one worker per core of the server';
    END IF;
    SELECT d.qualified, d.key_column, d.key_type INTO table_name, key_column, v_key_type
      FROM token_rotation.describe_target(p_table, p_column) AS d;
    EXECUTE format('SELECT t.%1$I::text FROM ONLY %2$s AS t ORDER BY t.%1$I DESC LIMIT 1', key_column, table_name)
       INTO v_max;

    batch_size := p_batch_size;
    rows_total := 0;
    rows_exact := true;
    slices := 0;
    batches := 0;
    IF v_max IS NOT NULL THEN
        SELECT sum(s.rows_expected)::bigint, bool_and(s.exact), count(*)::integer,
               sum(ceil(s.rows_expected::numeric / p_batch_size))::bigint
          INTO rows_total, rows_exact, slices, batches
          FROM token_rotation.plan_slices(p_table, key_column, p_workers, v_max) AS s;
    END IF;

    -- the sample: the table's first batch, exactly as rotate() runs it, in a subtransaction rolled back by
    -- raising c_rollback (which also undoes the SET LOCAL lock_timeout)
    sample_rows := 0;
    IF v_max IS NOT NULL THEN
        BEGIN
            PERFORM set_config('lock_timeout', (extract(epoch FROM p_lock_timeout) * 1000)::bigint::text, true);
            v_started := clock_timestamp();
            EXECUTE format('SELECT t.%1$I::text FROM ONLY %2$s AS t WHERE t.%1$I <= $1::%3$s '
                           'ORDER BY t.%1$I OFFSET $2 LIMIT 1', key_column, table_name, v_key_type)
               INTO v_upper USING v_max, p_batch_size - 1;
            EXECUTE format('UPDATE ONLY %2$s SET %4$I = pg_catalog.gen_random_uuid() WHERE %1$I <= $1::%3$s',
                           key_column, table_name, v_key_type, p_column)
               USING coalesce(v_upper, v_max);
            GET DIAGNOSTICS sample_rows = ROW_COUNT;
            sample_seconds := extract(epoch FROM clock_timestamp() - v_started);
            RAISE EXCEPTION USING ERRCODE = c_rollback;
        EXCEPTION WHEN SQLSTATE 'TRPLN' THEN
            NULL;  -- rolled back: no token changed
        END;
        v_per_row := sample_seconds / greatest(sample_rows, 1);
        estimated_duration := make_interval(secs => round((v_per_row * rows_total / greatest(slices, 1))::numeric, 1));
    ELSE
        sample_seconds := 0;
        estimated_duration := '0';
    END IF;
    RETURN NEXT;
END
$$;

COMMENT ON FUNCTION token_rotation.plan(regclass, name, integer, integer, interval) IS
    'Dry run: rows, slices, batches and an estimated duration from one sample batch that is rolled back.';

-- ==== sql/34_table_sizes.sql ====
-- token_rotation.table_sizes(table): the on-disk size of a table and of its indexes, and its live and dead
-- tuples, for the report after a run: every rotated row leaves a dead tuple and new index entries (an indexed
-- token column makes the updates non-HOT) until VACUUM reclaims them. The driver reads it before and after a
-- run to show the growth, and offers VACUUM (ANALYZE). Tuple counts come from the statistics system, so they
-- lag the last transactions by up to a second or so.
--   SELECT * FROM token_rotation.table_sizes('public.tickets');
CREATE FUNCTION token_rotation.table_sizes(p_table regclass)
RETURNS TABLE (
      table_bytes      bigint
    , indexes_bytes    bigint
    , total_bytes      bigint
    , live_tuples      bigint
    , dead_tuples      bigint
    , last_vacuum      timestamptz
    , last_autovacuum  timestamptz
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_relation_size(p_table), pg_indexes_size(p_table), pg_total_relation_size(p_table),
           s.n_live_tup, s.n_dead_tup, s.last_vacuum, s.last_autovacuum
      FROM (SELECT p_table) AS t (relid)
      LEFT JOIN pg_stat_all_tables s ON s.relid = t.relid
$$;

COMMENT ON FUNCTION token_rotation.table_sizes(regclass) IS
    'Table and index sizes in bytes, live and dead tuples, last vacuum: the growth report after a run.';
