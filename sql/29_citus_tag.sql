-- token_rotation_internal.citus_tag(run): the tag of a coordinator's run that its shards' runs carry (with the shard):
-- {"run", "started"}, the start as epoch seconds (a text form would follow the session's time zone).
CREATE OR REPLACE FUNCTION token_rotation_internal.citus_tag(
      p_run token_rotation.runs
)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('run', p_run.run_id, 'started', extract(epoch FROM p_run.started_at))
$$;

COMMENT ON FUNCTION token_rotation_internal.citus_tag(token_rotation.runs) IS
    'The tag {"run", "started"} of a coordinator''s run that its shards'' runs carry.';
