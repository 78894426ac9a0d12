-- token_rotation_internal.check_privileges(): refuses (42501 insufficient_privilege) a role that may not read the
-- tool's own tables: rotate() reads its run's state and options there before each batch, and the run's
-- progress; it writes them only through the tool's functions (claim_slice(), record_batch(), ...), which run
-- as the tool's owner and check the caller's right on the table. The table itself is checked by
-- describe_target().
--   SELECT token_rotation_internal.check_privileges();
CREATE OR REPLACE FUNCTION token_rotation_internal.check_privileges()
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_missing text;
BEGIN
    SELECT string_agg(format('%s on %s', n.priv, n.tab), ', ') INTO v_missing
      FROM (VALUES ('token_rotation.runs', 'SELECT'), ('token_rotation.slices', 'SELECT'),
                   ('token_rotation.batches', 'SELECT')) AS n(tab, priv)
     WHERE NOT has_table_privilege(n.tab, n.priv);
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'role % may not read the tables of token_rotation', current_user
            USING ERRCODE = 'insufficient_privilege', DETAIL = format('missing: %s', v_missing),
                  HINT = 'the GRANT recipe for a rotating role is in sql/examples/grants.sql';
    END IF;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.check_privileges() IS
    'Refuses a role that may not read token_rotation.runs, slices and batches (rotate() reads its run there).';
