-- token_rotation.check_privileges(): refuses (42501 insufficient_privilege) a role that may not write the
-- tool's own tables: rotate() records every batch in them, in the batch's transaction. The table itself is
-- checked by describe_target().
--   SELECT token_rotation.check_privileges();
CREATE OR REPLACE FUNCTION token_rotation.check_privileges()
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_missing text;
BEGIN
    SELECT string_agg(format('%s on %s', n.priv, n.tab), ', ') INTO v_missing
      FROM (VALUES ('token_rotation.runs', 'SELECT'), ('token_rotation.runs', 'INSERT'),
                   ('token_rotation.runs', 'UPDATE'), ('token_rotation.slices', 'SELECT'),
                   ('token_rotation.slices', 'INSERT'), ('token_rotation.slices', 'UPDATE'),
                   ('token_rotation.batches', 'INSERT')) AS n(tab, priv)
     WHERE NOT has_table_privilege(n.tab, n.priv);
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'role % may not write the tables of token_rotation', current_user
            USING ERRCODE = 'insufficient_privilege', DETAIL = format('missing: %s', v_missing),
                  HINT = 'the GRANT recipe for a rotating role is in sql/examples/grants.sql';
    END IF;
END
$$;

COMMENT ON FUNCTION token_rotation.check_privileges() IS
    'Refuses a role that may not write token_rotation.runs, slices and batches (rotate() records every batch).';
