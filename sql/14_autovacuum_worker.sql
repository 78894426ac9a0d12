-- token_rotation_internal.autovacuum_worker(relations): the autovacuum worker processing one of these relations in
-- this database, as 'public.tickets (pid 123)', or NULL when none is (GitLab's "autovacuum active on table"
-- indicator: a run waits for it rather than race it with more dead tuples). A VACUUM is a backend in
-- pg_stat_progress_vacuum; the relation it works on is the one it holds ShareUpdateExclusiveLock on, read in
-- pg_locks, which every role may read: autovacuum workers run as the bootstrap superuser, whose progress rows
-- other roles see without the relation, so this needs no pg_monitor. A VACUUM of a client backend the role
-- can see (such as the CLI's reclaim) does not count; another role's manual VACUUM, hidden like an
-- autovacuum's, counts as one.
--   SELECT token_rotation_internal.autovacuum_worker(ARRAY['public.tickets'::regclass]);
CREATE OR REPLACE FUNCTION token_rotation_internal.autovacuum_worker(p_relations regclass[])
RETURNS text
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT min(format('%s (pid %s)', l.relation::regclass, p.pid))
      FROM pg_stat_progress_vacuum p
      JOIN pg_locks l ON l.pid = p.pid AND l.locktype = 'relation' AND l.mode = 'ShareUpdateExclusiveLock'
                     AND l.granted AND l.relation = ANY (p_relations::oid[])
                     AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
      LEFT JOIN pg_stat_activity a ON a.pid = p.pid
     WHERE a.backend_type IS DISTINCT FROM 'client backend'
$$;

COMMENT ON FUNCTION token_rotation_internal.autovacuum_worker(regclass[]) IS
    'The autovacuum worker processing one of the relations (''public.t (pid N)''), NULL if none; needs no '
    'pg_monitor (pg_locks).';
