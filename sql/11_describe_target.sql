-- token_rotation_internal.describe_target(table, column, key, trust_table_owner): checks that a table can be rotated
-- and returns its quoted name, the key its rows are walked by and that key's column types: p_key's columns, or
-- by default the primary key (one column or several).
-- A key must be NOT NULL columns that a unique index covers (the index's
-- columns are among them), and must not contain the token column. A partitioned table is one target: its leaf
-- partitions (ordinary tables) are rotated through it. Also checks that the caller may read the key and update
-- the token, and that no row-level security policy or INSTEAD rule hides rows from the UPDATE. Every refusal
-- is an error with an ERRCODE, the values in DETAIL and the next step in HINT. Called by rotate() on every
-- CALL (a resume too) before it changes anything, and by plan().
--
-- Targets it refuses whoever asks, a superuser too (42501): the system's tables (pg_catalog, information_schema,
-- pg_toast and every pg_toast_temp_N: a superuser's run rewrote pg_description, and plan() took
-- pg_authid.rolpassword) and the tool's own (schema token_rotation).
-- Owners: an UPDATE runs code of the table's owner with the rights of the role that UPDATEs (triggers, index
-- expressions and predicates, CHECK constraints, generated columns, ALSO rules on UPDATE): a trigger made its
-- owner a superuser when a superuser rotated the table. PostgreSQL runs its own maintenance (VACUUM, ANALYZE,
-- CLUSTER, REINDEX) as the table's owner for that reason (CVE-2022-1552); a procedure that COMMITs cannot
-- switch roles, so rotate() refuses instead: when the table or one of its partitions is owned by a role the
-- caller does not trust and has such code, 42501, unless p_trust_table_owner => true says the caller reviewed
-- it. The caller (current_user) trusts itself, a superuser, and a role that is a member of it
-- (pg_has_role(owner, current_user, 'USAGE'): it holds the caller's rights already, its code gains nothing).
-- The choice is per CALL, never stored with a run: whoever resumes decides again. token_value() holds a format's
-- function to the same rule.
--   SELECT * FROM token_rotation_internal.describe_target('public.tickets', 'token');
--   SELECT * FROM token_rotation_internal.describe_target('public.authtoken_token', 'key', '{user_id}');
--   SELECT * FROM token_rotation_internal.describe_target('app.tickets', 'token', NULL, p_trust_table_owner => true);
CREATE OR REPLACE FUNCTION token_rotation_internal.describe_target(
      p_table       regclass
    , p_column      name   DEFAULT 'token'
    , p_key         name[] DEFAULT NULL
    , p_trust_table_owner boolean DEFAULT false
    , OUT qualified   text
    , OUT key_columns name[]
    , OUT key_types   regtype[]
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_relkind   "char";
    v_generated "char";
    v_attnums   smallint[];
    v_index     text;
    v_other     text;
    v_bad       text;
    v_rules     text;
    v_schema    name;
    v_owner     text;     -- an owner the caller does not trust, whose code an UPDATE of the table runs
    v_code      text;     -- that code
BEGIN
    IF p_table IS NULL THEN
        RAISE EXCEPTION 'table must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'pass the table, e.g. ''public.tickets''';
    END IF;
    IF p_column IS NULL THEN
        RAISE EXCEPTION 'token column must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'pass the token column with p_column';
    END IF;

    SELECT c.relkind, format('%I.%I', n.nspname, c.relname), n.nspname
      INTO v_relkind, qualified, v_schema
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table with oid % does not exist', p_table::oid
            USING ERRCODE = 'undefined_table', HINT = 'pass the table by name, e.g. ''public.tickets''';
    END IF;
    -- the system's tables and the tool's own: never, whoever asks (see the header)
    IF v_schema IN ('pg_catalog', 'information_schema', 'pg_toast') OR v_schema ~ '^pg_toast_temp_'
       OR p_table::oid < 16384 THEN  -- FirstNormalObjectId: below it, objects of initdb
        RAISE EXCEPTION 'permission denied to rotate %: it is a system table', qualified
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('schema %s holds PostgreSQL''s catalogs or their TOAST data: the tool never '
                                  'rewrites them, not even for a superuser', quote_ident(v_schema)),
                  HINT = 'pass a table of the application, e.g. ''public.tickets''; a role''s password is '
                         'changed with ALTER ROLE ... PASSWORD';
    END IF;
    IF v_schema = 'token_rotation' THEN
        RAISE EXCEPTION 'permission denied to rotate %: it is a table of the tool itself', qualified
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'schema token_rotation holds the record of every run (runs, slices, batches), which '
                           'verify() and every resume rely on',
                  HINT = 'pass a table of the application, e.g. ''public.tickets''';
    END IF;
    IF v_relkind = 'p' THEN  -- rotated through its parent: every leaf must take an ordinary UPDATE
        SELECT string_agg(format('%s (relkind %s)', c.oid::regclass, c.relkind), ', ') INTO v_bad
          FROM pg_partition_tree(p_table) AS pt JOIN pg_class c ON c.oid = pt.relid
         WHERE pt.isleaf AND c.relkind <> 'r';
        IF v_bad IS NOT NULL THEN
            RAISE EXCEPTION 'partitioned table % has partitions that are not tables', qualified
                USING ERRCODE = 'wrong_object_type', DETAIL = format('leaf partition(s) %s', v_bad),
                      HINT = 'rotate its ordinary leaf partitions one by one, a CALL each';
        END IF;
    ELSIF v_relkind <> 'r' THEN
        RAISE EXCEPTION '% is not a table', qualified
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = format('relkind is %L; only ordinary and partitioned tables (relkind r, p) can be '
                                  'rotated', v_relkind),
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

    -- a unique key other than one with the token, NOT NULL: what a HINT suggests for p_key
    SELECT string_agg(quote_ident(a.attname), ',' ORDER BY j.j) INTO v_other
      FROM (SELECT i.indkey, i.indnkeyatts FROM pg_index i
             WHERE i.indrelid = p_table AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
               AND NOT EXISTS (SELECT FROM generate_series(0, i.indnkeyatts - 1) AS g(j)
                                 LEFT JOIN pg_attribute a ON a.attrelid = p_table AND a.attnum = i.indkey[g.j]
                                WHERE a.attname IS NULL OR NOT a.attnotnull OR a.attname = p_column)
             ORDER BY i.indisprimary DESC, i.indnkeyatts, i.indexrelid LIMIT 1) AS u
     CROSS JOIN generate_series(0, u.indnkeyatts - 1) AS j(j)
      JOIN pg_attribute a ON a.attrelid = p_table AND a.attnum = u.indkey[j.j];

    IF p_key IS NULL THEN  -- the primary key, in its index order
        SELECT array_agg(a.attname ORDER BY j.j) INTO key_columns
          FROM pg_index i
         CROSS JOIN generate_series(0, i.indnkeyatts - 1) AS j(j)
          JOIN pg_attribute a ON a.attrelid = p_table AND a.attnum = i.indkey[j.j]
         WHERE i.indrelid = p_table AND i.indisprimary;
        IF key_columns IS NULL THEN
            RAISE EXCEPTION 'table % has no primary key', qualified
                USING ERRCODE = 'invalid_table_definition',
                      DETAIL = 'the rotation walks the table in key order and checkpoints the last key',
                      HINT = 'add a primary key, or pass with p_key NOT NULL columns covered by a unique index'
                             || coalesce(', e.g. ' || v_other, '');
        END IF;
        IF p_column = ANY (key_columns) THEN
            RAISE EXCEPTION 'column % of % is in its primary key', quote_ident(p_column), qualified
                USING ERRCODE = 'feature_not_supported',
                      DETAIL = format('the rotation walks the primary key (%s) unless p_key names another '
                                      'unique key, and cannot rewrite the key it walks',
                                      array_to_string(key_columns, ', ')),
                      HINT = coalesce('pass another unique key with p_key, e.g. ' || v_other,
                                      'pass p_key with NOT NULL columns covered by a unique index without the '
                                      'token, e.g. a unique user_id');
        END IF;
    ELSE
        IF cardinality(p_key) = 0 OR array_position(p_key, NULL) IS NOT NULL
           OR cardinality(p_key) <> (SELECT count(DISTINCT k) FROM unnest(p_key) AS k) THEN
            RAISE EXCEPTION 'key must name distinct columns'
                USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_key is %s', p_key),
                      HINT = 'pass one or more column names without repeats, e.g. user_id or id,created_at';
        END IF;
        SELECT string_agg(quote_ident(k.name), ', ' ORDER BY k.ord) INTO v_bad
          FROM unnest(p_key) WITH ORDINALITY AS k(name, ord)
         WHERE NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = p_table AND a.attname = k.name
                                                        AND a.attnum > 0 AND NOT a.attisdropped);
        IF v_bad IS NOT NULL THEN
            RAISE EXCEPTION 'key column(s) % of % do not exist', v_bad, qualified
                USING ERRCODE = 'undefined_column', DETAIL = format('p_key is %s', p_key),
                      HINT = 'pass existing columns with p_key';
        END IF;
        IF p_column = ANY (p_key) THEN
            RAISE EXCEPTION 'token column % of % is in the key', quote_ident(p_column), qualified
                USING ERRCODE = 'feature_not_supported',
                      DETAIL = format('p_key is %s: the rotation walks the key, so it cannot rewrite it', p_key),
                      HINT = coalesce('pass a key without the token with p_key, e.g. ' || v_other,
                                      'pass p_key without the token column');
        END IF;
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord) INTO v_bad
          FROM unnest(p_key) WITH ORDINALITY AS k(name, ord)
          JOIN pg_attribute a ON a.attrelid = p_table AND a.attname = k.name
         WHERE NOT a.attnotnull;
        IF v_bad IS NOT NULL THEN
            RAISE EXCEPTION 'key column(s) % of % are nullable', v_bad, qualified
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'a row whose key is NULL is in no key range, so it would keep its token',
                      HINT = format('ALTER TABLE %s ALTER COLUMN ... SET NOT NULL, or pass NOT NULL columns '
                                    'with p_key%s', qualified, ', e.g. ' || v_other);
        END IF;
        SELECT array_agg(a.attnum) INTO v_attnums
          FROM unnest(p_key) AS k(name) JOIN pg_attribute a ON a.attrelid = p_table AND a.attname = k.name;
        SELECT i.indexrelid::regclass::text INTO v_index
          FROM pg_index i
         WHERE i.indrelid = p_table AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
           AND NOT EXISTS (SELECT FROM generate_series(0, i.indnkeyatts - 1) AS g(j)
                            WHERE NOT i.indkey[g.j] = ANY (v_attnums))
         LIMIT 1;
        IF v_index IS NULL THEN
            RAISE EXCEPTION 'no unique index of % covers the key (%)', qualified, array_to_string(p_key, ', ')
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'two rows with one key would make a checkpoint ambiguous: one of them could be '
                               'skipped or rotated twice',
                      HINT = format('CREATE UNIQUE INDEX on those columns (no WHERE clause), or pass a unique key%s',
                                    ', e.g. ' || v_other);
        END IF;
        key_columns := p_key;
    END IF;
    SELECT array_agg(a.atttypid::regtype ORDER BY k.ord) INTO key_types
      FROM unnest(key_columns) WITH ORDINALITY AS k(name, ord)
      JOIN pg_attribute a ON a.attrelid = p_table AND a.attname = k.name;

    -- rotate() runs with the caller's rights (SECURITY INVOKER): the caller reads the key, updates the token
    SELECT string_agg(quote_ident(k), ', ') INTO v_bad
      FROM unnest(key_columns) AS k WHERE NOT has_column_privilege(p_table, k, 'SELECT');
    IF v_bad IS NOT NULL OR NOT has_column_privilege(p_table, p_column, 'UPDATE') THEN
        RAISE EXCEPTION 'permission denied to rotate %', qualified
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('role %s needs SELECT on column(s) %s and UPDATE on column %s', current_user,
                                  (SELECT string_agg(quote_ident(k), ', ') FROM unnest(key_columns) AS k),
                                  quote_ident(p_column)),
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
    -- code of an owner the caller does not trust, run by the UPDATE with the caller's rights (see the header):
    -- the table and every partition of it, each with its own owner; what a partition inherits from its parent
    -- (cloned triggers, attached indexes, inherited constraints and columns) is listed on the parent
    IF NOT p_trust_table_owner THEN
        SELECT min(x.owner), string_agg(x.code, ', ' ORDER BY x.level, x.code) INTO v_owner, v_code
          FROM (SELECT o.owner, o.level, k.code
                  FROM (SELECT r.relid AS rel, r.level, c.relowner::regrole::text AS owner,
                               CASE WHEN r.relid = p_table THEN '' ELSE format(' on %s', r.relid::regclass) END AS place
                          FROM (SELECT p_table AS relid, 0 AS level
                                 UNION
                                SELECT pt.relid, pt.level FROM pg_partition_tree(p_table) AS pt) AS r
                          JOIN pg_class c ON c.oid = r.relid
                         WHERE NOT pg_has_role(c.relowner, current_user, 'USAGE')) AS o
                 CROSS JOIN LATERAL (
                        SELECT format('trigger %I', t.tgname) || o.place
                          FROM pg_trigger t
                         WHERE t.tgrelid = o.rel AND NOT t.tgisinternal AND t.tgenabled <> 'D' AND t.tgparentid = 0
                         UNION ALL
                        SELECT format('index %s (%s)', i.indexrelid::regclass,
                                      concat_ws(' and ', CASE WHEN i.indexprs IS NOT NULL THEN 'expression' END,
                                                CASE WHEN i.indpred IS NOT NULL THEN 'predicate' END))
                          FROM pg_index i
                         WHERE i.indrelid = o.rel AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL)
                           AND NOT EXISTS (SELECT FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
                         UNION ALL
                        SELECT format('check constraint %I', n.conname) || o.place
                          FROM pg_constraint n
                         WHERE n.conrelid = o.rel AND n.contype = 'c' AND n.conislocal
                         UNION ALL
                        SELECT format('generated column %I', a.attname) || o.place
                          FROM pg_attribute a
                         WHERE a.attrelid = o.rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> ''
                           AND a.attislocal
                         UNION ALL
                        SELECT format('rule %I', w.rulename) || o.place
                          FROM pg_rewrite w
                         WHERE w.ev_class = o.rel AND w.ev_type = '2' AND w.ev_enabled <> 'D') AS k(code)) AS x;
        IF v_code IS NOT NULL THEN
            RAISE EXCEPTION 'permission denied to rotate %: an UPDATE of it runs code of its owner, role %',
                            qualified, v_owner
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = format('%s; role %s would run it with its own rights, and role %s does not hold '
                                      'them (it is neither role %s, a member of it, nor a superuser)',
                                      v_code, current_user, v_owner, current_user),
                      HINT = format('rotate as the table''s owner (SET ROLE %s), or review that code and pass '
                                    'p_trust_table_owner => true', v_owner);
        END IF;
    END IF;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.describe_target(regclass, name, name[], boolean) IS
    'Checks a table (plain or partitioned) for rotation: never a system table or the tool''s own, nor code of an '
    'owner the caller does not trust unless p_trust_table_owner; returns its quoted name, its key''s columns '
    '(p_key, or the primary key) and their types, or raises why not.';
