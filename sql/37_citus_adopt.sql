-- token_rotation_internal.citus_adopt(shard, citus): on a worker, before a shard's CALL: an open run with this tag
-- whose table no longer exists is this shard's run from before the shard was moved away and back (a move
-- makes a new table with the same name and rows, its committed rotations carried across): it goes on, on the
-- shard's table as it is now, from its checkpoint (the key, not the table, marks it). Returns its run id, or
-- NULL. As the tool's owner, for a role that may rotate the shard's token column (authorize()).
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_adopt(
      p_shard regclass
    , p_citus jsonb
)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run token_rotation.runs;
BEGIN
    SELECT * INTO v_run FROM token_rotation.runs r
     WHERE r.options->'citus' = p_citus AND r.state IN ('active', 'paused')
       AND NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = r.target::oid)
       AND NOT EXISTS (SELECT FROM token_rotation.runs o WHERE o.target = p_shard AND o.state IN ('active', 'paused'))
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM token_rotation_internal.authorize(p_shard, v_run.token_column, 'rotate');
    UPDATE token_rotation.runs SET target = p_shard WHERE run_id = v_run.run_id;
    RETURN v_run.run_id;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_adopt(regclass, jsonb) IS
    'A shard''s open run whose table is gone (moved away and back) goes on on the shard''s table as it is now.';
