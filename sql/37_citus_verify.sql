-- token_rotation_internal.citus_verify(run): verify() of a coordinator's run of a distributed table: every shard has
-- exactly one run, finished, on the node that holds it, each passing verify() there (its batches chain over
-- its key range, its rows agree, its tokens are unique within the shard); the shards' rows add up to the
-- run's. A token is unique across shards only where a unique index (which includes the distribution column)
-- says so. A node that cannot be reached fails the check, named.
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_verify(
      p_run_id bigint
)
RETURNS TABLE (check_name text, ok boolean, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run    token_rotation.runs;
    v_asked  integer := 0;
    v_node   text;
    v_port   integer;
    v_ok     boolean;
    v_text   text;
    v_found  jsonb := '[]'::jsonb;
    v_failed text;
    v_bad    bigint;
    v_n      bigint;
BEGIN
    SELECT * INTO v_run FROM token_rotation.runs WHERE run_id = p_run_id;
    FOR v_node, v_port, v_ok, v_text IN
        SELECT * FROM token_rotation_internal.citus_on_nodes(v_run.target, pg_catalog.format(
            'SELECT token_rotation_internal.citus_node_verify(%L::jsonb)', token_rotation_internal.citus_tag(v_run)))
    LOOP
        v_asked := v_asked + 1;
        IF v_ok THEN  -- the runs of this run's shards (a tag names a shard of its own table only)
            v_found := v_found || (SELECT coalesce(jsonb_agg(e || jsonb_build_object('node', v_node, 'port', v_port)),
                                                   '[]')
                                     FROM jsonb_array_elements(v_text::jsonb) AS e
                                    WHERE EXISTS (SELECT FROM token_rotation.shards s WHERE s.run_id = p_run_id
                                                     AND s.shardid = (e->>'shardid')::bigint));
        ELSE
            v_failed := concat_ws('; ', v_failed, pg_catalog.format('node %s:%s: %s', v_node, v_port, v_text));
        END IF;
    END LOOP;

    check_name := 'finished';
    ok := v_run.state = 'finished';
    detail := format('state %s', v_run.state);
    RETURN NEXT;

    check_name := 'every node answered';
    ok := v_failed IS NULL;
    detail := coalesce(v_failed, format('%s node(s)', v_asked));
    RETURN NEXT;

    -- each shard: exactly one run, finished, on the node that holds the shard now
    SELECT count(*) FILTER (WHERE r.n IS DISTINCT FROM 1 OR NOT r.finished OR NOT r.here), count(*)
      INTO v_bad, v_n
      FROM token_rotation.shards s
      LEFT JOIN LATERAL (
            SELECT count(*) AS n, bool_and(e->>'state' = 'finished') AS finished,
                   bool_and(EXISTS (SELECT FROM token_rotation_internal.citus_shards(v_run.target) AS c
                                     WHERE c.shardid = s.shardid AND c.node = e->>'node'
                                       AND c.port = (e->>'port')::integer)) AS here
              FROM jsonb_array_elements(v_found) AS e
             WHERE (e->>'shardid')::bigint = s.shardid) AS r ON true
     WHERE s.run_id = p_run_id;
    check_name := 'every shard has one finished run on its node';
    ok := v_bad = 0 AND v_n > 0;
    detail := format('%s shard(s), %s out of line', v_n, v_bad);
    RETURN NEXT;

    SELECT count(*) FILTER (WHERE jsonb_array_length(e->'failed') > 0), count(*),
           string_agg(format('%s on %s:%s (%s)', e->>'node_run_id', e->>'node', e->>'port', e->'failed'), '; ')
               FILTER (WHERE jsonb_array_length(e->'failed') > 0)
      INTO v_bad, v_n, v_text
      FROM jsonb_array_elements(v_found) AS e;
    check_name := 'each shard''s run verifies on its node';
    ok := v_bad = 0 AND v_n > 0;
    detail := CASE WHEN v_text IS NOT NULL THEN format('failed: %s', v_text)
                   ELSE format('%s shard run(s) passed every check', v_n) END;
    RETURN NEXT;

    SELECT coalesce(sum((e->>'rows_done')::bigint), 0) INTO v_n FROM jsonb_array_elements(v_found) AS e;
    check_name := 'row counts agree with the shards';
    ok := v_n = v_run.rows_done;
    detail := format('%s rows done by the shards'' runs, %s booked by the run', v_n, v_run.rows_done);
    RETURN NEXT;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_verify(bigint) IS
    'verify() of a distributed table''s run: each shard has one finished run on its node that verifies there.';
