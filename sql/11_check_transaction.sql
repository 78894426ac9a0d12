-- token_rotation_internal.check_transaction(): refuses (25001 active_sql_transaction) a CALL of rotate() inside a
-- transaction block that began well before it: rotate() COMMITs after every batch, and PostgreSQL refuses
-- COMMIT inside BEGIN ... COMMIT. rotate() asks before anything else happens. (The check cannot see a block
-- opened in the same breath, e.g. psql -c 'BEGIN; CALL ...': for those rotate()'s first COMMIT, before any
-- change, fails with PostgreSQL's own "invalid transaction termination".)
--   SELECT token_rotation_internal.check_transaction();
CREATE OR REPLACE FUNCTION token_rotation_internal.check_transaction()
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF statement_timestamp() - transaction_timestamp() > interval '1 second' THEN
        RAISE EXCEPTION 'token_rotation.rotate cannot run inside a transaction block'
            USING ERRCODE = 'active_sql_transaction',
                  DETAIL = 'it commits after every batch, and PostgreSQL refuses COMMIT inside BEGIN ... COMMIT',
                  HINT = 'CALL it on its own: psql with AUTOCOMMIT on, psycopg with autocommit=True, '
                         'Alembic inside op.get_context().autocommit_block()';
    END IF;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.check_transaction() IS
    'Refuses a CALL of rotate() inside a transaction block that began before it (rotate() COMMITs per batch).';
