-- token_rotation.hold(table, reason, for): makes the workers of a table's open run wait, with this reason in
-- progress.throttled and their NOTICE, until the hold runs out (p_for after now) or is lifted (p_reason NULL).
-- For a check outside the database: the CLI's --throttle-query holds the run for a few seconds each time its
-- query says wait and renews the hold while it does, so a hold left by a driver that died runs out by itself.
-- A DBA can hold a run over a busy hour, at most 7 days at a time. The reason is kept to 200
-- characters, through redact() with the run's format (other roles read and show it: no control character,
-- no token shape).
-- Returns the run id.
--   SELECT token_rotation.hold('public.tickets', 'month-end batch jobs', '1 hour');
--   SELECT token_rotation.hold('public.tickets', NULL);  -- lift it
CREATE OR REPLACE FUNCTION token_rotation.hold(
      p_table  regclass
    , p_reason text
    , p_for    interval DEFAULT '5 seconds'
)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run_id bigint;
    v_max    CONSTANT interval := interval '7 days';  -- a longer hold is renewed before it runs out
BEGIN
    IF p_reason IS NOT NULL AND (btrim(p_reason) = '' OR p_for IS NULL OR p_for <= '0' OR p_for > v_max) THEN
        RAISE EXCEPTION 'a hold needs a reason and a positive duration of at most %', v_max
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_for is %s', p_for),
                  HINT = 'e.g. hold(''public.tickets'', ''backup running'', ''30 min''); renew a longer hold '
                         'before it runs out; p_reason NULL lifts a hold';
    END IF;
    v_run_id := token_rotation_internal.open_run(p_table);
    PERFORM token_rotation_internal.authorize_run(v_run_id, NULL, 'control');
    UPDATE token_rotation.runs
       SET hold_reason = left(token_rotation_internal.redact(p_reason, options->>'format', options->>'prefix'), 200),
           hold_until = CASE WHEN p_reason IS NOT NULL THEN clock_timestamp() + p_for END
     WHERE run_id = v_run_id;
    PERFORM token_rotation_internal.citus_control(v_run_id);  -- a Citus distributed table: its shards' runs too
    RETURN v_run_id;
END
$$;

COMMENT ON FUNCTION token_rotation.hold(regclass, text, interval) IS
    'Makes the workers of a table''s open run wait with a reason until p_for runs out (p_reason NULL lifts '
    'it). Returns the run id.';
