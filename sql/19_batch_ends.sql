-- token_rotation_internal.batch_ends(...): the keys that end the coming batches of a slice, found ahead: from the
-- checkpoint p_after (a key is a text[], one element per key column), the p_batch_size-th key, then the
-- p_batch_size-th after that, and so on, up to p_max_ends keys or for as long as p_max_time allows, or to
-- the slice's end p_hi; each returned as the key's text form. A NULL element (or p_hi) means that batch runs
-- to the slice's end. p_end_after / p_end_first are key_range_sql()'s statements.
-- Why ahead: each lookup walks the key index; run right before its batch, it meets heap pages that the
-- earlier batches' new row versions have just made not all-visible, so the index-only scan visits the heap
-- for most keys (measured in BENCHMARKS.md, "The engine against one bare UPDATE"). The UPDATE still takes the
-- key range, so a key deleted meanwhile only makes its batch smaller; rows inserted into the range of a batch
-- found ahead make that batch larger than batch_size. An error (a cancel, a lock timeout on the table) is
-- returned in err_state / err_msg, as run_batch() does, for rotate() to handle. Its SET clause is the
-- search_path alone: it keeps the other settings rotate() pinned (pin_settings()), which shape how the text
-- bounds are read. Called by rotate():
--   SELECT * FROM token_rotation_internal.batch_ends(k.end_after, k.end_first, NULL, '{1000000}', 3000, 10000, '1s');
CREATE OR REPLACE FUNCTION token_rotation_internal.batch_ends(
      p_end_after  text
    , p_end_first  text
    , p_after      text[]
    , p_hi         text[]
    , p_batch_size integer
    , p_max_ends   integer
    , p_max_time   interval
    , OUT ends      text[]  -- each a key's text form ('{3000}'): an array of keys would be 2-dimensional
    , OUT err_state text
    , OUT err_msg   text
)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- @plpgsql_check_options: security_warnings = false
    -- (its EXECUTEs run statements from key_range_sql(), identifiers quoted with %I, values bound with
    -- USING: plpgsql_check cannot follow a statement built in another function)
DECLARE
    v_seek text[] := p_after;
    v_from timestamptz := clock_timestamp();
BEGIN
    ends := '{}';
    BEGIN
        LOOP
            IF v_seek IS NULL THEN
                EXECUTE p_end_first INTO v_seek USING v_seek, p_hi, p_batch_size - 1;
            ELSE
                EXECUTE p_end_after INTO v_seek USING v_seek, p_hi, p_batch_size - 1;
            END IF;
            ends := ends || v_seek::text;
            EXIT WHEN v_seek IS NULL OR v_seek = p_hi OR cardinality(ends) >= p_max_ends
                   OR clock_timestamp() - v_from > p_max_time;
        END LOOP;
    EXCEPTION
        WHEN query_canceled THEN
            err_state := SQLSTATE;
            err_msg := SQLERRM;
        WHEN OTHERS THEN  -- keep the message, drop the DETAIL
            err_state := SQLSTATE;
            err_msg := SQLERRM;
    END;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.batch_ends(text, text, text[], text[], integer, integer, interval) IS
    'The keys ending the coming batches of a slice, found ahead (at most p_max_ends, or p_max_time); '
    'errors returned in err_state/err_msg.';
