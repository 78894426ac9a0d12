-- token_rotation.describe_target(table, column): checks that a table can be rotated and returns its
-- quoted name, its single-column primary key and that key's type; also that the caller may read the key and
-- update the token, and that no row-level security policy or INSTEAD rule hides rows from the UPDATE. Every refusal is an error with
-- an ERRCODE, the values in DETAIL and the next step in HINT. Called by rotate() before it changes anything.
--   SELECT * FROM token_rotation.describe_target('public.tickets', 'token');
CREATE OR REPLACE FUNCTION token_rotation.describe_target(
      p_table       regclass
    , p_column      name DEFAULT 'token'
    , OUT qualified  text
    , OUT key_column name
    , OUT key_type   regtype
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_relkind   "char";
    v_generated "char";
    v_pk_cols   integer;
    v_pk_attnum smallint;
    v_rules     text;
BEGIN
    IF p_table IS NULL THEN
        RAISE EXCEPTION 'table must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'pass the table, e.g. ''public.tickets''';
    END IF;
    IF p_column IS NULL THEN
        RAISE EXCEPTION 'token column must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'pass the token column with p_column';
    END IF;

    SELECT c.relkind, format('%I.%I', n.nspname, c.relname)
      INTO v_relkind, qualified
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table with oid % does not exist', p_table::oid
            USING ERRCODE = 'undefined_table', HINT = 'pass the table by name, e.g. ''public.tickets''';
    END IF;
    IF v_relkind = 'p' THEN
        RAISE EXCEPTION '% is a partitioned table', qualified
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'a run rotates one table; its partitions are tables of their own',
                  HINT = format('rotate each partition: SELECT format(''CALL token_rotation.rotate(%%L);'', relid) '
                                'FROM pg_partition_tree(%L) WHERE isleaf \gexec', qualified);
    END IF;
    IF v_relkind <> 'r' THEN
        RAISE EXCEPTION '% is not a table', qualified
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = format('relkind is %L; only ordinary tables (relkind r) can be rotated', v_relkind),
                  HINT = 'pass the table behind the view or materialized view';
    END IF;

    SELECT a.attgenerated
      INTO v_generated
      FROM pg_attribute a
     WHERE a.attrelid = p_table AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column % of % does not exist', quote_ident(p_column), qualified
            USING ERRCODE = 'undefined_column', HINT = 'pass the token column with p_column';
    END IF;
    -- its type is token_value()'s check: it depends on the format
    IF v_generated <> '' THEN
        RAISE EXCEPTION 'column % of % is a generated column', quote_ident(p_column), qualified
            USING ERRCODE = 'wrong_object_type', HINT = 'pass a stored token column with p_column';
    END IF;

    SELECT i.indnatts, i.indkey[0]
      INTO v_pk_cols, v_pk_attnum
      FROM pg_index i
     WHERE i.indrelid = p_table AND i.indisprimary;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % has no primary key', qualified
            USING ERRCODE = 'invalid_table_definition',
                  DETAIL = 'the rotation walks the table in primary-key order and checkpoints the last key',
                  HINT = 'add a single-column primary key';
    END IF;
    IF v_pk_cols <> 1 THEN
        RAISE EXCEPTION 'primary key of % has % columns', qualified, v_pk_cols
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'only a single-column primary key can serve as the checkpoint',
                  HINT = 'add a single-column unique key and make it the primary key';
    END IF;

    SELECT a.attname, a.atttypid::regtype
      INTO key_column, key_type
      FROM pg_attribute a
     WHERE a.attrelid = p_table AND a.attnum = v_pk_attnum;
    IF key_column = p_column THEN
        RAISE EXCEPTION 'column % of % is its primary key', quote_ident(p_column), qualified
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'the rotation walks the primary key, so it cannot rewrite it',
                  HINT = 'rotate a token column that is not the primary key';
    END IF;

    -- rotate() runs with the caller's rights (SECURITY INVOKER): the caller reads the key, updates the token
    IF NOT has_column_privilege(p_table, key_column, 'SELECT')
       OR NOT has_column_privilege(p_table, p_column, 'UPDATE') THEN
        RAISE EXCEPTION 'permission denied to rotate %', qualified
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('role %s needs SELECT on column %s and UPDATE on column %s',
                                  current_user, quote_ident(key_column), quote_ident(p_column)),
                  HINT = format('GRANT SELECT, UPDATE ON %s TO %I; the full recipe is in sql/examples/grants.sql',
                                qualified, current_user);
    END IF;
    -- an INSTEAD rule on UPDATE replaces the batch's UPDATE: the run would finish with tokens unchanged
    SELECT string_agg(quote_ident(r.rulename), ', ' ORDER BY r.rulename) INTO v_rules
      FROM pg_rewrite r
     WHERE r.ev_class = p_table AND r.ev_type = '2' AND r.is_instead AND r.ev_enabled IN ('O', 'A');
    IF v_rules IS NOT NULL THEN
        RAISE EXCEPTION 'table % has an INSTEAD rule on UPDATE', qualified
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = format('rule(s) %s would replace each batch''s UPDATE: tokens would stay', v_rules),
                  HINT = format('disable it while rotating: ALTER TABLE %s DISABLE RULE ...', qualified);
    END IF;
    -- rows that row-level security hides from the UPDATE would keep their token while the run counts them
    IF row_security_active(p_table) THEN
        RAISE EXCEPTION 'row-level security of % applies to role %', qualified, current_user
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'rows its policies hide would keep their old token while the run reports them done',
                  HINT = 'rotate as the table owner (without FORCE ROW LEVEL SECURITY) or as a role with BYPASSRLS';
    END IF;
END
$$;

COMMENT ON FUNCTION token_rotation.describe_target(regclass, name) IS
    'Checks a table for rotation; returns its quoted name, primary-key column and key type, or raises why not.';
