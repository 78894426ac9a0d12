-- token_rotation_internal.citus_cancel(run): on a node, cancels its open runs of the shards of a coordinator's run (the
-- tag less its shard), for a role that may control each (cancel()); returns how many. Sent by the coordinator
-- when its run was cancelled.
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_cancel(
      p_run jsonb
)
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(token_rotation.cancel(r.target))
      FROM token_rotation.runs r
     WHERE (r.options->'citus') - 'shard' = p_run AND r.state IN ('active', 'paused')
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_cancel(jsonb) IS
    'Cancels this node''s open runs of the shards of a coordinator''s run; returns how many.';
