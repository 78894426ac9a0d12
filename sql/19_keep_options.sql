-- token_rotation_internal.keep_options(run_id, given, options): stores a run's options (runs.options) in the
-- transaction that claims its slice, so that a bare CALL resumes with them. On a run that already had
-- options, each given value that differs from the stored one changes it for the rest of the run, and the
-- CALL says so in one NOTICE with SQLSTATE TROPT (raised even with p_quiet: the CLI shows it as a line).
-- Called by rotate() after claim_slice(), under its lock on the table:
--   PERFORM token_rotation_internal.keep_options(42, '{"sleep": "00:00:00.1"}', v_options);
-- It runs as the tool's owner (SECURITY DEFINER), for a role that may rotate the table (authorize_run()).
CREATE OR REPLACE FUNCTION token_rotation_internal.keep_options(
      p_run_id  bigint
    , p_given   jsonb
    , p_options jsonb
)
RETURNS void
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_stored  jsonb;
    v_changes text;
BEGIN
    PERFORM token_rotation_internal.authorize_run(p_run_id, NULL, 'rotate');
    SELECT options INTO v_stored FROM token_rotation.runs WHERE run_id = p_run_id FOR UPDATE;
    IF v_stored IS NOT NULL AND v_stored <> '{}' THEN
        v_changes := token_rotation_internal.option_changes(v_stored, v_stored || jsonb_strip_nulls(coalesce(p_given, '{}')));
        p_options := v_stored || jsonb_strip_nulls(coalesce(p_given, '{}'));
    END IF;
    UPDATE token_rotation.runs SET options = p_options
     WHERE run_id = p_run_id AND options IS DISTINCT FROM p_options;
    IF v_changes IS NOT NULL THEN
        RAISE NOTICE 'run %: options changed for the rest of the run: %', p_run_id, v_changes
            USING ERRCODE = 'TROPT', HINT = 'a later CALL without them goes on with these values';
    END IF;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.keep_options(bigint, jsonb, jsonb) IS
    'Stores a run''s options; on a resume, a given value that differs changes it for the rest of the run (NOTICE TROPT).';
