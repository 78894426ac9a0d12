-- token_rotation.autovacuum_worker(relations): the autovacuum worker processing one of these relations in
-- this database, as 'public.tickets (pid 123)', or NULL when none is (GitLab's "autovacuum active on table"
-- indicator: a run waits for it rather than race it with more dead tuples). A manual VACUUM (such as the
-- CLI's reclaim) does not count. Autovacuum workers run as the bootstrap superuser: a role without
-- pg_read_all_stats (pg_monitor has it) sees their progress rows without the relation; such a row in this
-- database raises 42501 insufficient_privilege, naming the grant, rather than pass for "none".
--   SELECT token_rotation.autovacuum_worker(ARRAY['public.tickets'::regclass]);
CREATE OR REPLACE FUNCTION token_rotation.autovacuum_worker(p_relations regclass[])
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_worker text;
    v_hidden boolean;
BEGIN
    SELECT min(format('%s (pid %s)', p.relid::regclass, p.pid)) FILTER (WHERE p.relid = ANY (p_relations)
                                                                          AND a.backend_type = 'autovacuum worker'),
           bool_or(p.relid IS NULL)
      INTO v_worker, v_hidden
      FROM pg_stat_progress_vacuum p
      LEFT JOIN pg_stat_activity a ON a.pid = p.pid
     WHERE p.datid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database());
    IF v_worker IS NULL AND v_hidden THEN
        RAISE EXCEPTION 'role % cannot see which tables autovacuum processes', current_user
            USING ERRCODE = 'insufficient_privilege', HINT = format('GRANT pg_monitor TO %I', current_user);
    END IF;
    RETURN v_worker;
END
$$;

COMMENT ON FUNCTION token_rotation.autovacuum_worker(regclass[]) IS
    'The autovacuum worker processing one of the relations (''public.t (pid N)''), NULL if none; 42501 when '
    'the role cannot see it.';
