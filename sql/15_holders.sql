-- token_rotation.holders(run_id): the sessions holding the worker locks of a run right now, one line each,
-- read from the advisory locks they hold (slice_holder()) and pg_stat_activity:
--   "backend 4711 (role app_rotator, token-rotation, slice 1, active since 2026-12-03 10:02:11)"
-- Any role can take a slice's advisory lock (pg_advisory_lock(lock_space(), slice_id)) and so block a run:
-- PostgreSQL cannot keep a session from taking an advisory lock. A holder that is not the slice's worker (its
-- pid is not the one claim_slice() recorded in slices.backend_pid) is named as such, with its role and
-- application_name and the command that ends it, so that a DBA can pg_terminate_backend() it:
--   "slice 1 locked by backend 4712 (role mallory, psql), not a token-rotation worker of it: SELECT
--    pg_terminate_backend(4712) ends it"
-- Used in the error a second CALL on a busy table raises; handy in psql too:
--   SELECT token_rotation.holders(run_id) FROM token_rotation.runs WHERE state = 'active';
CREATE OR REPLACE FUNCTION token_rotation.holders(p_run_id bigint)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(CASE WHEN h.pid = s.backend_pid
                           THEN format('backend %s (%s, slice %s, role %s, %s since %s)',
                                       h.pid, coalesce(nullif(a.application_name, ''), 'no application_name'),
                                       s.slice_no, coalesce(quote_ident(a.usename::text), 'unknown'),
                                       coalesce(a.state, 'unknown'),
                                       to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS'))
                           ELSE format('slice %s locked by backend %s (role %s, %s), not a token-rotation worker '
                                       'of it: SELECT pg_terminate_backend(%s) ends it',
                                       s.slice_no, h.pid, coalesce(quote_ident(a.usename::text), 'unknown'),
                                       coalesce('application_name ' || quote_literal(nullif(a.application_name, '')),
                                                'no application_name'),
                                       h.pid) END,
                      '; ' ORDER BY s.slice_no)
      FROM token_rotation.slices s
     CROSS JOIN LATERAL (SELECT token_rotation_internal.slice_holder(s.slice_id) AS pid) h
      LEFT JOIN pg_stat_activity a ON a.pid = h.pid
     WHERE s.run_id = p_run_id AND h.pid IS NOT NULL
$$;

COMMENT ON FUNCTION token_rotation.holders(bigint) IS
    'Backends holding the worker locks of a run, as one line of text (NULL when nobody works on it); a holder '
    'that is not the slice''s worker is named with its role, application_name and pg_terminate_backend().';
