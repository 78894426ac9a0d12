-- token_rotation_internal.citus_progress(run): the live progress of a coordinator's open run of a distributed table,
-- for the progress view: the rows done on every node now, and the working time (the waves booked, plus the
-- longest-working open shard run: the wave in progress). NULLs without Citus, or when a node does not answer
-- (the view then shows what the waves booked).
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_progress(
      p_run_id      bigint
    , OUT rows_done bigint
    , OUT elapsed   interval
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run   token_rotation.runs;
    v_ok    boolean;
    v_text  text;
    v_open  float8 := 0;
BEGIN
    SELECT * INTO v_run FROM token_rotation.runs WHERE run_id = p_run_id;
    FOR v_ok, v_text IN
        SELECT n.ok, n.result FROM token_rotation_internal.citus_on_nodes(v_run.target, pg_catalog.format(
            'SELECT token_rotation_internal.citus_node_progress(%L::jsonb)', token_rotation_internal.citus_tag(v_run))) AS n
    LOOP
        IF NOT v_ok THEN
            rows_done := NULL;
            elapsed := NULL;
            RETURN;
        END IF;
        rows_done := coalesce(rows_done, 0) + (v_text::jsonb->>'rows_done')::bigint;
        v_open := greatest(v_open, (v_text::jsonb->>'open_seconds')::float8);
    END LOOP;
    IF rows_done IS NULL THEN  -- no node: not a Citus table (any more)
        RETURN;
    END IF;
    elapsed := v_run.elapsed + make_interval(secs => v_open);
END
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_progress(bigint) IS
    'Live rows done and working time of a distributed table''s open run, from every node (NULLs if one fails).';
