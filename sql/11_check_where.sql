-- token_rotation_internal.check_where(table, where, search_path, trust_table_owner): checks a subset expression
-- (rotate(p_where => ...), `rotate --where`) and returns it deparsed: schema-qualified wherever a name is not
-- pg_catalog's, so that it means the same under any search_path (rotate() stores that text with the run and
-- every batch's UPDATE, which runs under the caller's path, evaluates it). It must be exactly one boolean
-- expression over the table's own columns:
-- - parsed as a CHECK constraint of a temporary copy of the table's columns (CREATE TEMP TABLE ... (LIKE t)),
--   in a subtransaction that is always rolled back: so no second statement (a ';' is refused before that),
--   no subquery (a CHECK cannot hold one, let alone a data-modifying one), no aggregate or window function,
--   no column of another table; a syntax error is PostgreSQL's own;
-- - no volatile function (random(), clock_timestamp(), nextval(): the rows a batch takes must not depend on
--   when it runs; now() is stable and welcome, e.g. created_at < now() - interval '90 days');
-- - it runs with the caller's rights in every batch, and with a resuming role's rights after a resume: each
--   function, operator, type and collation it names must be one the caller trusts (pg_catalog's, or owned by
--   the caller, a superuser or a member of the caller, or by the table's owner with p_trust_table_owner, the
--   rule of token_value()'s function formats), never in a temporary schema. rotate() checks the run's stored
--   expression again at every CALL, with the rights of that CALL's role.
-- - it may not name p_secret_columns (the token and previous-token columns): its text is stored with the
--   run and shown by status, so it must never hold a token.
-- p_search_path is the path the expression's names are looked up in: the caller's for a new expression, the
-- pinned pg_catalog, pg_temp for a stored (already qualified) one. 22023 (invalid_parameter_value) for an
-- expression that is not one, 42501 for code the caller does not trust, PostgreSQL's own SQLSTATE for a
-- syntax or type error. NULL gives NULL.
--   SELECT token_rotation_internal.check_where('public.tickets', 'tenant_id = 42', current_setting('search_path'));
CREATE OR REPLACE FUNCTION token_rotation_internal.check_where(
      p_table             regclass
    , p_where             text
    , p_search_path       text
    , p_trust_table_owner boolean DEFAULT false
    , p_secret_columns    name[]  DEFAULT '{}'
)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- @plpgsql_check_options: security_warnings = false
    -- (the expression is the caller's by design: it is checked here as a CHECK constraint of a temporary table
    -- in a subtransaction that is rolled back, and only its deparsed form leaves this function)
DECLARE
    v_deparsed  text;
    v_untrusted text;
    v_volatile  text;
    v_secret    text;
    v_temp      regclass;  -- the temporary copy of the table's columns
    v_owner     oid;
    v_state     text;
    v_msg       text;
    v_detail    text;
    v_hint      text;
BEGIN
    IF p_where IS NULL THEN
        RETURN NULL;
    END IF;
    IF btrim(p_where) = '' OR strpos(p_where, ';') > 0 THEN
        RAISE EXCEPTION 'the subset of % must be one SQL expression', p_table
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = CASE WHEN btrim(p_where) = '' THEN 'p_where is empty'
                                ELSE 'p_where holds a '';'': a second statement is not allowed' END,
                  HINT = 'pass one boolean expression over the table''s columns, e.g. tenant_id = 42 '
                         '(a '';'' inside a string: chr(59))';
    END IF;
    SELECT c.relowner INTO v_owner FROM pg_class c WHERE c.oid = p_table;
    BEGIN
        EXECUTE format('CREATE TEMP TABLE token_rotation_subset (LIKE %s) ON COMMIT DROP', p_table);
        v_temp := to_regclass('pg_temp.token_rotation_subset');
        PERFORM set_config('search_path', p_search_path, true);
        EXECUTE format('ALTER TABLE pg_temp.token_rotation_subset ADD CONSTRAINT token_rotation_subset CHECK (%s)',
                       p_where);
        PERFORM set_config('search_path', 'pg_catalog, pg_temp', true);
        IF (SELECT count(*) FROM pg_constraint c
             WHERE c.conrelid = v_temp AND c.contype = 'c') <> 1 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'more than one expression';
        END IF;
        SELECT pg_get_expr(c.conbin, c.conrelid) INTO v_deparsed
          FROM pg_constraint c
         WHERE c.conrelid = v_temp AND c.conname = 'token_rotation_subset';
        -- what the expression names beyond pg_catalog (objects of the pinned catalog are not in pg_depend):
        -- functions, operators (their functions too), types and collations, each with its owner
        SELECT string_agg(format('%s %s owned by %s', o.kind, o.name, o.owner::regrole), ', ')
          INTO v_untrusted
          FROM pg_depend d
          JOIN pg_constraint c ON c.oid = d.objid AND d.classid = 'pg_constraint'::regclass
          CROSS JOIN LATERAL (
                SELECT 'function' AS kind, p.oid::regprocedure::text AS name, p.proowner AS owner,
                       p.pronamespace AS nsp
                  FROM pg_proc p WHERE d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid
                UNION ALL
                SELECT 'operator', o.oid::regoperator::text, o.oprowner, o.oprnamespace
                  FROM pg_operator o WHERE d.refclassid = 'pg_operator'::regclass AND o.oid = d.refobjid
                UNION ALL
                SELECT 'function', p.oid::regprocedure::text, p.proowner, p.pronamespace
                  FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode
                 WHERE d.refclassid = 'pg_operator'::regclass AND o.oid = d.refobjid
                UNION ALL
                SELECT 'type', t.oid::regtype::text, t.typowner, t.typnamespace
                  FROM pg_type t WHERE d.refclassid = 'pg_type'::regclass AND t.oid = d.refobjid
                UNION ALL
                SELECT 'collation', l.oid::regcollation::text, l.collowner, l.collnamespace
                  FROM pg_collation l WHERE d.refclassid = 'pg_collation'::regclass AND l.oid = d.refobjid
          ) AS o
         WHERE c.conrelid = v_temp AND c.conname = 'token_rotation_subset'
           AND d.deptype = 'n'
           AND (o.nsp = pg_my_temp_schema() OR o.nsp IN (SELECT n.oid FROM pg_namespace n
                                                           WHERE n.nspname LIKE 'pg\_temp\_%')
                OR NOT (pg_has_role(o.owner, current_user, 'USAGE')
                        OR (o.owner = v_owner AND p_trust_table_owner)));
        SELECT string_agg(DISTINCT quote_ident(a.attname), ', ') INTO v_secret
          FROM pg_depend d
          JOIN pg_constraint c ON c.oid = d.objid AND d.classid = 'pg_constraint'::regclass
          JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE c.conrelid = v_temp AND c.conname = 'token_rotation_subset'
           AND d.refclassid = 'pg_class'::regclass AND d.refobjid = c.conrelid
           AND a.attname = ANY (p_secret_columns);
        -- volatile functions: the catalog's by name (they are not in pg_depend: the deparsed text names them
        -- bare), the others from pg_depend
        SELECT string_agg(DISTINCT p.proname, ', ') INTO v_volatile
          FROM regexp_matches(v_deparsed, '([a-z_][a-z0-9_$]*)\(', 'g') AS m(g)
          JOIN pg_proc p ON p.proname = m.g[1] AND p.pronamespace = 'pg_catalog'::regnamespace
         WHERE p.provolatile = 'v';
        SELECT concat_ws(', ', string_agg(p.oid::regprocedure::text, ', '), v_volatile) INTO v_volatile
          FROM pg_depend d
          JOIN pg_constraint c ON c.oid = d.objid AND d.classid = 'pg_constraint'::regclass
          JOIN pg_proc p ON (d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid)
                         OR (d.refclassid = 'pg_operator'::regclass
                             AND p.oid = (SELECT o.oprcode FROM pg_operator o WHERE o.oid = d.refobjid))
         WHERE c.conrelid = v_temp AND c.conname = 'token_rotation_subset'
           AND p.provolatile = 'v';
        v_volatile := nullif(v_volatile, '');
        RAISE EXCEPTION USING ERRCODE = 'TRWHR', MESSAGE = 'checked';  -- undo the temporary table
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL,
                                v_hint = PG_EXCEPTION_HINT;
        IF v_state <> 'TRWHR' THEN
            RAISE EXCEPTION 'the subset of % is not one boolean expression over its columns: %', p_table, v_msg
                USING ERRCODE = CASE WHEN v_state IN ('42601', '42703', '42804', '42883', '42P01', '0A000', '42803',
                                                      '42P20', '42725', '22P02', '42846')
                                     THEN v_state ELSE 'invalid_parameter_value' END,
                      DETAIL = coalesce(nullif(v_detail, ''), format('p_where: %s', p_where)),
                      HINT = coalesce(nullif(v_hint, ''),
                                      'pass one boolean expression over the table''s own columns, without '
                                      'subqueries, e.g. tenant_id = 42');
        END IF;
    END;
    IF v_untrusted IS NOT NULL THEN
        RAISE EXCEPTION 'the subset of % names code that % does not trust', p_table, current_user
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('every batch evaluates it with the rights of the role that runs it: %s', v_untrusted),
                  HINT = 'use functions and types of pg_catalog or of a trusted role (the caller, a superuser, a '
                         'member of the caller; the table''s owner with p_trust_table_owner), never of a '
                         'temporary schema';
    END IF;
    IF v_secret IS NOT NULL THEN
        RAISE EXCEPTION 'the subset of % names the token column %', p_table, v_secret
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'the expression is stored with the run and shown by status: it must not hold a token',
                  HINT = 'name the rows by their key or other columns (NULL tokens are left alone by default; '
                         'p_fill_null gives them one)';
    END IF;
    IF v_volatile IS NOT NULL THEN
        RAISE EXCEPTION 'the subset of % calls a volatile function: %', p_table, v_volatile
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'the rows a batch takes must not depend on when it runs',
                  HINT = 'use stable or immutable functions (now() is stable: created_at < now() - interval ''90 days'')';
    END IF;
    RETURN v_deparsed;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.check_where(regclass, text, text, boolean, name[]) IS
    'Checks a subset expression (p_where): one boolean expression over the table''s columns, no subquery, no '
    'volatile function, only code the caller trusts; returns it deparsed, schema-qualified.';
