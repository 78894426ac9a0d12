-- token_rotation.plan(table, column, batch_size, workers, lock_timeout, sample, format, prefix, grace
-- columns, key, trust_table_owner, where, fill_null, older_than): what a run would do, without changing a
-- token (`token-rotation rotate --dry-run`): the rows to rotate (counted, or estimated from the statistics
-- on big tables), the slices and batches. p_format, p_prefix and the grace columns are checked as rotate() would use them (plan() does not
-- read a run's stored options: pass them), and so is the table (describe_target(), with p_trust_table_owner
-- as rotate() passes it: a dry run says beforehand whether rotate() would refuse the table or its owner's
-- code). By default it writes nothing and locks no row: the sample columns are 0 and the estimated
-- duration is NULL. With p_sample => true (`rotate --dry-run --sample`) it also runs one sample batch (bound
-- query and UPDATE with the format's value, as rotate() does them), rolls it back and estimates the duration
-- from it; the sample holds row locks on one batch for the time it takes, like a batch of the run. p_where,
-- p_fill_null and p_older_than plan a subset as rotate() would (the rows counted are those that match); plan()
-- reads p_where under its own search_path pg_catalog, pg_temp: qualify other schemas' names. One row:
--   SELECT * FROM token_rotation.plan('public.tickets', p_batch_size => 3000, p_workers => 2);
--   SELECT * FROM token_rotation.plan('public.tickets', p_sample => true);
CREATE OR REPLACE FUNCTION token_rotation.plan(
      p_table        regclass
    , p_column       name     DEFAULT NULL  -- NULL: default_options(), as for rotate()
    , p_batch_size   integer  DEFAULT NULL
    , p_workers      integer  DEFAULT 1
    , p_lock_timeout interval DEFAULT NULL
    , p_sample            boolean DEFAULT false
    , p_format            text    DEFAULT NULL
    , p_prefix            text    DEFAULT NULL
    , p_previous_column   name    DEFAULT NULL
    , p_rotated_at_column name    DEFAULT NULL
    , p_key               name[]  DEFAULT NULL
    , p_trust_table_owner boolean DEFAULT false
    , p_where             text     DEFAULT NULL
    , p_fill_null         boolean  DEFAULT false
    , p_older_than        interval DEFAULT NULL
)
RETURNS TABLE (
      table_name         text
    , key_columns        name[]
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
    -- @plpgsql_check_options: security_warnings = false
    -- (its EXECUTEs run statements from key_range_sql(), identifiers quoted with %I, values bound with
    -- USING: plpgsql_check cannot follow a statement built in another function)
DECLARE
    v_sql       record;
    v_value     record;
    v_max       text[];
    v_upper     text[];
    v_started   timestamptz;
    v_per_row   double precision;
    v_options   jsonb;
    v_filter    text;
    v_given     jsonb;    -- the options given, over the defaults (a new run's first batch size)
    v_column    name;
    v_batch     integer;
    v_lock      interval;
BEGIN
    v_given := (token_rotation.default_options() - 'target_batch_time')
               || jsonb_strip_nulls(jsonb_build_object('column', p_column, 'batch_size', p_batch_size,
                                                       'lock_timeout', p_lock_timeout));
    PERFORM token_rotation_internal.check_arguments(v_given, p_workers);
    v_column := v_given->>'column';
    v_batch := (v_given->>'batch_size')::integer;
    v_lock := (v_given->>'lock_timeout')::interval;
    SELECT d.qualified, d.key_columns INTO table_name, key_columns
      FROM token_rotation_internal.describe_target(p_table, v_column, p_key, p_trust_table_owner) AS d;
    SELECT * INTO v_value
      FROM token_rotation_internal.token_value(p_table, v_column, p_format, p_prefix, p_previous_column, p_rotated_at_column,
                                      p_trust_table_owner);
    v_options := jsonb_build_object('where', token_rotation_internal.check_where(p_table, p_where, 'pg_catalog, pg_temp',
                                                                        p_trust_table_owner,
                                                                        ARRAY[v_column, p_previous_column]),
                                    'fill_null', p_fill_null, 'older_than', p_older_than,
                                    'rotated_before', clock_timestamp() - p_older_than,
                                    'rotated_at_column', p_rotated_at_column);
    PERFORM token_rotation_internal.check_rows(p_table, NULL, '{}', jsonb_strip_nulls(v_options));
    v_filter := token_rotation_internal.run_filter(p_table, v_column, jsonb_strip_nulls(v_options));
    SELECT * INTO v_sql FROM token_rotation_internal.key_range_sql(p_table, key_columns, v_column, v_value.set_list, v_filter);
    EXECUTE v_sql.first_last INTO v_upper, v_max;

    batch_size := v_batch;
    rows_total := 0;
    rows_exact := true;
    slices := 0;
    batches := 0;
    IF v_max IS NOT NULL THEN
        SELECT sum(s.rows_expected)::bigint, bool_and(s.exact), count(*)::integer,
               sum(ceil(s.rows_expected::numeric / v_batch))::bigint
          INTO rows_total, rows_exact, slices, batches
          FROM token_rotation_internal.plan_slices(p_table, key_columns, p_workers, v_max, p_filter => v_filter) AS s;
    END IF;

    -- the sample: the table's first batch, exactly as rotate() runs it, in a subtransaction rolled back by
    -- raising SQLSTATE TRPLN (which also undoes the SET LOCAL lock_timeout)
    sample_rows := 0;
    IF v_max IS NOT NULL AND p_sample THEN
        BEGIN
            PERFORM set_config('lock_timeout', (extract(epoch FROM v_lock) * 1000)::bigint::text, true);
            v_started := clock_timestamp();
            EXECUTE v_sql.end_first INTO v_upper USING NULL::text[], v_max, v_batch - 1;
            EXECUTE v_sql.update_first USING NULL::text[], coalesce(v_upper, v_max);
            GET DIAGNOSTICS sample_rows = ROW_COUNT;
            sample_seconds := extract(epoch FROM clock_timestamp() - v_started);
            RAISE EXCEPTION USING ERRCODE = 'TRPLN';
        EXCEPTION WHEN SQLSTATE 'TRPLN' THEN
            NULL;  -- rolled back: no token changed
        END;
        v_per_row := sample_seconds / greatest(sample_rows, 1);
        estimated_duration := make_interval(secs => round((v_per_row * rows_total / greatest(slices, 1))::numeric, 1));
    ELSIF v_max IS NOT NULL THEN
        sample_seconds := 0;
        estimated_duration := NULL;  -- unknown without a sample
    ELSE
        sample_seconds := 0;
        estimated_duration := '0';
    END IF;
    RETURN NEXT;
END
$$;

COMMENT ON FUNCTION token_rotation.plan(regclass, name, integer, integer, interval, boolean, text, text, name,
                                         name, name[], boolean, text, boolean, interval) IS
    'Dry run: rows, slices, batches; the format checked; with p_sample => true also an estimated duration from '
    'one sample batch that is rolled back (it locks that batch''s rows while it runs).';
