-- token_rotation.plan(table, column, batch_size, workers): what a run would do, without changing a token
-- (`token-rotation rotate --dry-run`): the rows to rotate (counted, or estimated on big tables), the slices and
-- batches, and an estimated duration from one sample batch that is really run (bound query and UPDATE, as
-- rotate() does them) and then rolled back. The sample holds row locks on one batch for the time it takes, like
-- a batch of the run. One row:
--   SELECT * FROM token_rotation.plan('public.tickets', p_batch_size => 3000, p_workers => 2);
CREATE OR REPLACE FUNCTION token_rotation.plan(
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
