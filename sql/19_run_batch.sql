-- token_rotation_internal.run_batch(update_after, update_first, after, upper, search_path): one batch of rotate(): the UPDATE of
-- the key range (after, upper] (key_range_sql()'s statements), in a subtransaction. A new token that meets
-- an existing one (unique_violation) is drawn again, up to 3 times. Any error is returned, not raised, in
-- err_state / err_msg (the message only: a DETAIL may quote a row, token and all), so that rotate() can roll
-- back, book its time and report: 55P03 (lock timeout) and 40P01 (deadlock victim) are retried by rotate()
-- with a smaller batch, 57014 (cancel) and the rest end the CALL. Its own code runs under pg_catalog, pg_temp;
-- the UPDATE alone runs under p_search_path, the caller's (rotate() read it when it started), because it fires
-- the table's triggers, which must find what they always find; the statement itself names everything with
-- its schema (key_range_sql()), so the path reaches only the triggers. Called by rotate():
--   SELECT * FROM token_rotation_internal.run_batch(k.update_after, k.update_first, '{3000}', '{6000}', 'pg_catalog, public, pg_temp');
CREATE OR REPLACE FUNCTION token_rotation_internal.run_batch(
      p_update_after text
    , p_update_first text
    , p_after        text[]
    , p_upper        text[]
    , p_search_path  text
    , OUT rows        bigint
    , OUT retries     integer
    , OUT err_state   text
    , OUT err_msg     text
)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- @plpgsql_check_options: security_warnings = false
    -- (its EXECUTEs run statements from key_range_sql(), identifiers quoted with %I, values bound with
    -- USING: plpgsql_check cannot follow a statement built in another function)
BEGIN
    retries := 0;
    LOOP
        BEGIN
            PERFORM pg_catalog.set_config('search_path', p_search_path, true);  -- undone on return (SET clause) or error
            IF p_after IS NULL THEN
                EXECUTE p_update_first USING p_after, p_upper;
            ELSE
                EXECUTE p_update_after USING p_after, p_upper;
            END IF;
            GET DIAGNOSTICS rows = ROW_COUNT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
            RETURN;
        EXCEPTION
            WHEN unique_violation THEN  -- a new token met an existing one: draw again
                retries := retries + 1;
                IF retries > 3 THEN
                    err_state := SQLSTATE;
                    err_msg := 'new tokens collided with existing ones 4 times in a row';
                    RETURN;
                END IF;
            WHEN query_canceled THEN  -- Ctrl-C, pg_cancel_backend, statement_timeout (OTHERS does not catch it)
                err_state := SQLSTATE;
                err_msg := SQLERRM;
                RETURN;
            WHEN OTHERS THEN  -- keep the message, drop the DETAIL: it may quote a row, token and all
                err_state := SQLSTATE;
                err_msg := SQLERRM;
                RETURN;
        END;
    END LOOP;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.run_batch(text, text, text[], text[], text) IS
    'One batch of rotate(): the UPDATE of a key range in a subtransaction, unique_violation redrawn up to 3 '
    'times; errors returned in err_state/err_msg.';
