-- token_rotation_internal.authorize(table, column, action): the one check of a right that every function writing the
-- tool's tables makes where it writes (they run as the tool's owner, SECURITY DEFINER); authorize_run() makes it
-- for a run. The caller (caller()) may act on a run when it may UPDATE the run's token column (the right to
-- rotate that table: a role that may write every token gains nothing by steering the bookkeeping), or when it
-- is a member of the role that owns the tool's schema. Anything else raises 42501 insufficient_privilege,
-- before anything is written.
--   PERFORM token_rotation_internal.authorize('public.tickets', 'token', 'rotate');
CREATE OR REPLACE FUNCTION token_rotation_internal.authorize(
      p_table  regclass
    , p_column name
    , p_action text
)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_role name := token_rotation_internal.caller();
BEGIN
    IF coalesce(has_column_privilege(v_role, p_table::oid, p_column, 'UPDATE'), false)
       OR pg_has_role(v_role, (SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = 'token_rotation'),
                      'MEMBER') THEN
        RETURN;
    END IF;
    RAISE EXCEPTION 'role % may not % the runs of %', v_role, p_action, p_table::oid::regclass
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = format('a run of a table is %s only by a role that may UPDATE its column %s',
                              CASE p_action WHEN 'rotate' THEN 'started, resumed and recorded'
                                            ELSE 'controlled' END, quote_ident(p_column)),
              HINT = 'GRANT UPDATE (token column) on the table to the role (sql/examples/grants.sql), or run '
                     'this as the table''s rotating role';
END
$$;

COMMENT ON FUNCTION token_rotation_internal.authorize(regclass, name, text) IS
    'Raises 42501 unless the caller may UPDATE the table''s token column (or is of the tool''s owner role).';
