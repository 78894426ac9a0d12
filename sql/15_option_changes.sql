-- token_rotation_internal.option_changes(old, new): the options whose value differs between two sets of a run's
-- options, as 'sleep 00:00:00 -> 00:00:00.02, target_batch_time none -> 00:00:00.005' (NULL when none
-- differs). The NOTICEs of keep_options() (a resume that gives other values) and set_options() say it.
--   SELECT token_rotation_internal.option_changes('{"sleep": "00:00:00"}', '{"sleep": "00:00:00.02"}');
CREATE OR REPLACE FUNCTION token_rotation_internal.option_changes(
      p_old jsonb
    , p_new jsonb
)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(format('%s %s -> %s', k.key, coalesce(p_old->>k.key, 'none'), coalesce(p_new->>k.key, 'none')),
                      ', ' ORDER BY k.key)
      FROM (SELECT jsonb_object_keys(coalesce(p_old, '{}') || coalesce(p_new, '{}')) AS key) AS k
     WHERE p_old->k.key IS DISTINCT FROM p_new->k.key
$$;

COMMENT ON FUNCTION token_rotation_internal.option_changes(jsonb, jsonb) IS
    'The options that differ between two sets of a run''s options, as ''name old -> new, ...'' (NULL if none).';
