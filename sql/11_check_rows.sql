-- token_rotation_internal.check_rows(table, open_options, given, options): checks the options that say which rows a run
-- rotates (where, older_than, fill_null: run_filter()), which are fixed when the run starts: p_older_than needs
-- the run's p_rotated_at_column and a positive age; a CALL that resumes the table's open run (open_options:
-- its runs.options) may repeat them but not change them, since the rows the run counted, and those its
-- batches have passed, were chosen by them (22023, with the stored ones in DETAIL). Called by rotate():
--   PERFORM token_rotation_internal.check_rows('public.tickets', NULL, '{"where": "(tenant_id = 42)"}', v_options);
CREATE OR REPLACE FUNCTION token_rotation_internal.check_rows(
      p_table        regclass
    , p_open_options jsonb
    , p_given        jsonb
    , p_options      jsonb
)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_changed text;
BEGIN
    IF p_options->>'older_than' IS NOT NULL THEN
        IF p_options->>'rotated_at_column' IS NULL THEN
            RAISE EXCEPTION 'p_older_than needs the run''s rotated-at column'
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'the age of a token is read from the column that each batch sets to its time',
                      HINT = 'name it with p_rotated_at_column (a timestamptz column of the table)';
        END IF;
        IF (p_options->>'older_than')::interval <= '0' THEN
            RAISE EXCEPTION 'p_older_than must be a positive age, not %', p_options->>'older_than'
                USING ERRCODE = 'invalid_parameter_value', HINT = 'pass an age such as 90 days';
        END IF;
    END IF;
    IF p_open_options IS NULL THEN
        RETURN;
    END IF;
    SELECT string_agg(format('%s %s (given: %s)', k, coalesce(p_open_options->>k, 'not set'), p_given->>k), ', ')
      INTO v_changed
      FROM unnest(ARRAY['where', 'older_than', 'fill_null']) AS k
     WHERE p_given->>k IS NOT NULL
       AND CASE k WHEN 'older_than' THEN (p_given->>k)::interval IS DISTINCT FROM (p_open_options->>k)::interval
                  WHEN 'fill_null' THEN (p_given->>k)::boolean
                                        IS DISTINCT FROM coalesce((p_open_options->>k)::boolean, false)
                  ELSE p_given->>k IS DISTINCT FROM p_open_options->>k END;
    IF v_changed IS NOT NULL THEN
        RAISE EXCEPTION 'the open run of % rotates other rows than the ones given', p_table
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('a run keeps the rows it started with: %s', v_changed),
                  HINT = format('CALL token_rotation.rotate(%L) without them to resume it, or cancel it first: '
                                'SELECT token_rotation.cancel(%L)', p_table::text, p_table::text);
    END IF;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.check_rows(regclass, jsonb, jsonb, jsonb) IS
    'Checks the options that choose a run''s rows (where, older_than, fill_null): p_older_than with a rotated-at '
    'column; a resume may not change them.';
