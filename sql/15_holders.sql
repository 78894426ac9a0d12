-- token_rotation.holders(run_id): the sessions working on a run right now, one line each
-- ("backend 4711 (token-rotation, active since 10:02:11)"), read from the advisory locks they hold.
-- Used in the error a second CALL on a busy table raises; handy in psql too:
--   SELECT token_rotation.holders(run_id) FROM token_rotation.runs WHERE state = 'active';
CREATE FUNCTION token_rotation.holders(p_run_id bigint)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(format('backend %s (%s, slice %s, %s since %s)',
                             l.pid, coalesce(nullif(a.application_name, ''), 'no application_name'),
                             s.slice_no, coalesce(a.state, 'unknown'),
                             to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS')), '; ' ORDER BY s.slice_no)
      FROM token_rotation.slices s
      JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted
                     AND l.classid = token_rotation.lock_space()::oid
                     AND l.objid = s.slice_id::integer::oid AND l.objsubid = 2
      LEFT JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE s.run_id = p_run_id
$$;

COMMENT ON FUNCTION token_rotation.holders(bigint) IS
    'Backends holding the worker locks of a run, as one line of text (NULL when nobody works on it).';
