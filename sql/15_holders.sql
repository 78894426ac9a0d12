-- token_rotation.holders(run_id): the sessions working on a run right now, one line each
-- ("backend 4711 (token-rotation, active since 10:02:11)"), read from the advisory locks they hold.
-- Used in the error a second CALL on a busy table raises; handy in psql too:
--   SELECT token_rotation.holders(run_id) FROM token_rotation.runs WHERE state = 'active';
CREATE OR REPLACE FUNCTION token_rotation.holders(p_run_id bigint)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(format('backend %s (%s, slice %s, %s since %s)',
                             h.pid, coalesce(nullif(a.application_name, ''), 'no application_name'),
                             s.slice_no, coalesce(a.state, 'unknown'),
                             to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS')), '; ' ORDER BY s.slice_no)
      FROM token_rotation.slices s
     CROSS JOIN LATERAL (SELECT token_rotation.slice_holder(s.slice_id) AS pid) h
      LEFT JOIN pg_stat_activity a ON a.pid = h.pid
     WHERE s.run_id = p_run_id AND h.pid IS NOT NULL
$$;

COMMENT ON FUNCTION token_rotation.holders(bigint) IS
    'Backends holding the worker locks of a run, as one line of text (NULL when nobody works on it).';
