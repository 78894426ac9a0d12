-- token_rotation_internal.token_value(table, column, format, prefix, previous_column, rotated_at_column,
-- trust_table_owner): checks that a token format fits the token column and builds the SET list of a batch's
-- UPDATE (key_range_sql()'s p_set): the new token, and the grace columns (the row's old token into the
-- previous column, the batch's time into the rotated-at column). Every refusal is raised before anything
-- changes, with ERRCODE, DETAIL and HINT. rotate() calls it on every CALL, a resume too, with the format
-- stored with the run: what a run executes is checked again against the role that resumes it.
--   SELECT * FROM token_rotation_internal.token_value('public.api_keys', 'api_key', 'hex:32', NULL, 'previous_api_key', 'rotated_at');
--
-- Formats (N random bytes, 16 <= N <= 1024: fewer than 16 bytes, 128 bits, is refused as too weak):
--   uuid               gen_random_uuid(); the default for a uuid column
--   hex:N              2N lower-case hex digits                     (text, varchar)
--   base64url:N        ceil(4N/3) characters of A-Z a-z 0-9 - _, URL-safe, no padding  (text, varchar)
--   bytes:N            N bytes                                      (bytea)
--   function:schema.fn a zero-argument VOLATILE function returning the column's type (text for varchar), found
--                      with to_regprocedure() and called by its quoted name (never spliced from the text).
--                      Its code runs with the caller's rights once per row, so it must be code the caller
--                      already trusts: owned by the caller, a superuser or a role that is a member of the
--                      caller (it holds the caller's rights already), or by the table's owner when that owner
--                      is trusted or p_trust_table_owner is true (describe_target(): the table's own code is
--                      held to the same rule); never in a temporary schema (any role with TEMP fills its
--                      own). Anything else is refused with 42501. Of pg_catalog's functions only the random
--                      ones: gen_random_uuid() and, on PostgreSQL 18, uuidv4() (122 random bits, as the uuid
--                      format); uuidv7() is refused: 74 random bits, and a timestamp that tells when the run
--                      passed the row.
--   null               sets the column NULL: only on the previous column of an earlier run of the table, to
--                      clear it in batches once the grace window has ended
-- p_prefix (hex and base64url only: letters, digits, _ . : -) goes in front of the text.
--
-- Where the random bytes come from: only gen_random_uuid(), which reads pg_strong_random (never random()),
-- without extensions. A version-4 uuid has 6 fixed bits: the version nibble in its 7th byte and the variant
-- bits in its 9th; its bytes 10 to 16 (7 bytes) are wholly random. N bytes are the bytes 10-16 of ceil(N/7)
-- uuids, concatenated and cut to N. (The first 6 bytes are random too, but one expression cannot use the
-- same uuid twice without a subquery, which PostgreSQL would evaluate once for the whole statement.)
CREATE OR REPLACE FUNCTION token_rotation_internal.token_value(
      p_table             regclass
    , p_column            name
    , p_format            text DEFAULT NULL
    , p_prefix            text DEFAULT NULL
    , p_previous_column   name DEFAULT NULL
    , p_rotated_at_column name DEFAULT NULL
    , p_trust_table_owner boolean DEFAULT false
    , OUT token_format           text
    , OUT set_list         text
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_target   text := p_table::text;
    v_coltype  oid;
    v_typmod   integer;
    v_notnull  boolean;
    v_kind     text;
    v_bytes    integer;
    v_len      integer;   -- characters of the new token (text formats)
    v_expr     text;
    v_fn       regprocedure;
    v_proc     record;
    v_att      record;
    v_fk       text;
    v_owner    oid;       -- the table's owner
    v_ident    text := '("[^"]+"|[A-Za-z_][A-Za-z0-9_$]*)';  -- a name in function:schema.name
BEGIN
    SELECT a.atttypid, a.atttypmod, a.attnotnull INTO v_coltype, v_typmod, v_notnull
      FROM pg_attribute a
     WHERE a.attrelid = p_table AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column % of % does not exist', quote_ident(p_column), v_target
            USING ERRCODE = 'undefined_column', HINT = 'pass the token column with p_column';
    END IF;

    token_format := coalesce(p_format, CASE WHEN v_coltype = 'uuid'::regtype THEN 'uuid' END);
    IF token_format IS NULL THEN
        RAISE EXCEPTION 'column % of % is not of type uuid', quote_ident(p_column), v_target
            USING ERRCODE = 'datatype_mismatch',
                  DETAIL = format('its type is %s; only a uuid column has a default format', v_coltype::regtype),
                  HINT = 'pass the token column with p_column, or its format with p_format, e.g. ''hex:32'' '
                         'for text, ''bytes:32'' for bytea';
    END IF;
    v_kind := split_part(token_format, ':', 1);
    IF v_kind IN ('hex', 'base64url', 'bytes') THEN
        IF token_format ~ '^[a-z0-9]+:[0-9]{1,4}$' THEN
            v_bytes := split_part(token_format, ':', 2)::integer;
        END IF;
        IF v_bytes IS NULL OR v_bytes NOT BETWEEN 1 AND 1024 THEN
            RAISE EXCEPTION 'invalid token format %', quote_literal(token_format)
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('%s:N takes N random bytes, 16 to 1024', v_kind),
                      HINT = format('e.g. p_format => ''%s:32''', v_kind);
        END IF;
        IF v_bytes < 16 THEN
            RAISE EXCEPTION 'token format % is too weak', quote_literal(token_format)
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('it has %s random byte(s), %s bits; a token needs at least 16 bytes '
                                      '(128 bits) so that nobody can guess one', v_bytes, 8 * v_bytes),
                      HINT = format('e.g. p_format => ''%s:32''', v_kind);
        END IF;
    ELSIF token_format NOT IN ('uuid', 'null') AND v_kind <> 'function' THEN
        RAISE EXCEPTION 'invalid token format %', quote_literal(token_format)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'the formats are uuid, hex:N, base64url:N, bytes:N, function:schema.name and null',
                  HINT = 'e.g. p_format => ''hex:32''';
    END IF;

    IF p_prefix IS NOT NULL AND v_kind NOT IN ('hex', 'base64url') THEN
        RAISE EXCEPTION 'a prefix needs a text format'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('p_format is %s', token_format),
                  HINT = 'use p_prefix with hex:N or base64url:N';
    END IF;
    IF p_prefix IS NOT NULL AND p_prefix !~ '^[A-Za-z0-9_.:-]{1,32}$' THEN
        RAISE EXCEPTION 'invalid token prefix'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('p_prefix has %s character(s)', length(p_prefix)),
                  HINT = 'a prefix is 1 to 32 of the characters A-Z a-z 0-9 _ . : -, e.g. ''tk_''';
    END IF;

    -- the random bytes: bytes 10-16 of ceil(N/7) v4 uuids (see the header)
    IF v_bytes IS NOT NULL THEN
        SELECT format('substring(%s FROM 1 FOR %s)',
                      string_agg('substring(pg_catalog.uuid_send(pg_catalog.gen_random_uuid()) FROM 10)', ' || '),
                      v_bytes)
          INTO v_expr
          FROM generate_series(1, (v_bytes + 6) / 7);
    END IF;
    CASE
        WHEN token_format = 'uuid' THEN
            v_expr := 'pg_catalog.gen_random_uuid()';
            IF v_coltype <> 'uuid'::regtype THEN
                RAISE EXCEPTION 'format uuid needs a uuid column: % of % is of type %', quote_ident(p_column),
                                v_target, v_coltype::regtype
                    USING ERRCODE = 'datatype_mismatch', HINT = 'pass p_format, e.g. ''hex:32'' for a text column';
            END IF;
        WHEN v_kind = 'bytes' THEN
            IF v_coltype <> 'bytea'::regtype THEN
                RAISE EXCEPTION 'format % needs a bytea column: % of % is of type %', token_format, quote_ident(p_column),
                                v_target, v_coltype::regtype
                    USING ERRCODE = 'datatype_mismatch', HINT = 'use hex:N or base64url:N for a text column';
            END IF;
        WHEN v_kind IN ('hex', 'base64url') THEN
            IF v_kind = 'hex' THEN
                v_expr := format('pg_catalog.encode(%s, ''hex'')', v_expr);
                v_len := 2 * v_bytes;
            ELSE  -- base64 without its padding and line breaks, + and / made URL-safe
                v_expr := format('pg_catalog.translate(pg_catalog.encode(%s, ''base64''), E''+/=\n'', ''-_'')', v_expr);
                v_len := (4 * v_bytes + 2) / 3;
            END IF;
            IF p_prefix IS NOT NULL THEN  -- checked above: only letters, digits and _ . : -
                v_expr := format('%L || %s', p_prefix, v_expr);
                v_len := v_len + length(p_prefix);
            END IF;
            IF v_coltype NOT IN ('text'::regtype, 'varchar'::regtype) THEN
                RAISE EXCEPTION 'format % needs a text or varchar column: % of % is of type %', token_format,
                                quote_ident(p_column), v_target, v_coltype::regtype
                    USING ERRCODE = 'datatype_mismatch',
                          HINT = 'use uuid for a uuid column, bytes:N for bytea';
            END IF;
            IF v_coltype = 'varchar'::regtype AND v_typmod >= 4 AND v_len > v_typmod - 4 THEN
                RAISE EXCEPTION 'format % does not fit column % of %', token_format, quote_ident(p_column), v_target
                    USING ERRCODE = 'string_data_right_truncation',
                          DETAIL = format('a new token has %s characters%s; the column is %s',
                                          v_len, CASE WHEN p_prefix IS NOT NULL THEN ' with its prefix' ELSE '' END,
                                          format_type(v_coltype, v_typmod)),
                          HINT = format('use fewer bytes (hex:N takes 2N characters, base64url:N about 4N/3), '
                                        'or widen the column to varchar(%s)', v_len);
            END IF;
        WHEN v_kind = 'function' THEN
            IF token_format ~ ('^function:' || v_ident || '(\.' || v_ident || ')?$') THEN
                v_fn := to_regprocedure(substr(token_format, length('function:') + 1) || '()');
            END IF;
            IF v_fn IS NULL THEN
                RAISE EXCEPTION 'function %() does not exist', substr(token_format, length('function:') + 1)
                    USING ERRCODE = 'undefined_function',
                          DETAIL = 'function:schema.name takes a function without arguments',
                          HINT = 'create it first, or check its schema and name';
            END IF;
            SELECT p.prorettype, p.proretset, p.prokind, p.provolatile, n.nspname, p.proname, p.proowner,
                   p.proowner::regrole::text AS owner, p.pronamespace
              INTO v_proc
              FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE p.oid = v_fn;
            SELECT c.relowner INTO v_owner FROM pg_class c WHERE c.oid = p_table;
            -- it runs with the caller's rights, once per row: only code the caller trusts (see the header)
            IF v_proc.nspname ~ '^pg_(toast_)?temp_' OR v_proc.pronamespace = pg_my_temp_schema()
               OR pg_is_other_temp_schema(v_proc.pronamespace) THEN
                RAISE EXCEPTION 'permission denied to use function % as a token format: it is in a temporary '
                                'schema', v_fn
                    USING ERRCODE = 'insufficient_privilege',
                          DETAIL = format('schema %s belongs to one session: any role with TEMP on the database '
                                          'creates functions in its own, and role %s would run them once per row',
                                          quote_ident(v_proc.nspname), current_user),
                          HINT = 'create the function in a permanent schema of the table''s owner, or use '
                                 'p_format => ''uuid'' (uuid), ''hex:32'' (text) or ''bytes:32'' (bytea)';
            END IF;
            IF NOT (pg_has_role(v_proc.proowner, current_user, 'USAGE')
                    OR (v_proc.proowner = v_owner AND p_trust_table_owner)) THEN
                RAISE EXCEPTION 'permission denied to use function % as a token format: it is owned by role %',
                                v_fn, v_proc.owner
                    USING ERRCODE = 'insufficient_privilege',
                          DETAIL = format('role %s would run it once per row, with its own rights; a format''s '
                                          'function must be owned by role %s, a member of it or a superuser%s',
                                          current_user, current_user,
                                          CASE WHEN v_proc.proowner = v_owner
                                               THEN ', or by the table''s owner once its code is trusted'
                                               ELSE '' END),
                          HINT = CASE WHEN v_proc.proowner = v_owner
                                      THEN format('rotate as the table''s owner (SET ROLE %s), or review the '
                                                  'function and pass p_trust_table_owner => true', v_proc.owner)
                                      ELSE format('review it and give it to a trusted role (ALTER FUNCTION %s '
                                                  'OWNER TO %I), or use p_format => ''uuid'', ''hex:32'' or '
                                                  '''bytes:32''', v_fn, current_user) END;
            END IF;
            -- of the system's functions only the random ones (see the header)
            IF v_proc.nspname IN ('pg_catalog', 'information_schema')
               AND v_proc.proname NOT IN ('gen_random_uuid', 'uuidv4') THEN
                RAISE EXCEPTION 'function % does not make random tokens', v_fn
                    USING ERRCODE = 'invalid_parameter_value',
                          DETAIL = CASE WHEN v_proc.proname = 'uuidv7'
                                        THEN 'a version-7 uuid has 74 random bits and the time it was made; a '
                                             'token needs 128 random bits and nothing else'
                                        ELSE 'of the functions of pg_catalog only gen_random_uuid() and uuidv4() '
                                             'make tokens (122 random bits from pg_strong_random)' END,
                          HINT = 'use p_format => ''uuid'' for a uuid column, ''hex:32'' for text, ''bytes:32'' '
                                 'for bytea';
            END IF;
            -- its type, or text for a varchar column (whose length the UPDATE itself then checks)
            IF v_proc.prokind <> 'f' OR v_proc.proretset
               OR NOT (v_proc.prorettype = v_coltype
                       OR (v_coltype = 'varchar'::regtype AND v_proc.prorettype = 'text'::regtype)) THEN
                RAISE EXCEPTION 'function % does not return %', v_fn, v_coltype::regtype
                    USING ERRCODE = 'datatype_mismatch',
                          DETAIL = format('it returns %s%s; column %s of %s is of type %s',
                                          CASE WHEN v_proc.proretset THEN 'SETOF ' ELSE '' END,
                                          v_proc.prorettype::regtype, quote_ident(p_column), v_target,
                                          v_coltype::regtype),
                          HINT = format('the function must return one %s per call', v_coltype::regtype);
            END IF;
            IF v_proc.provolatile <> 'v' THEN
                RAISE EXCEPTION 'function % is not VOLATILE', v_fn
                    USING ERRCODE = 'invalid_parameter_value',
                          DETAIL = 'a STABLE or IMMUTABLE function may give every row of a batch the same token',
                          HINT = format('ALTER FUNCTION %s VOLATILE', v_fn);
            END IF;
            IF NOT has_function_privilege(v_fn, 'EXECUTE') THEN
                RAISE EXCEPTION 'permission denied for function %', v_fn
                    USING ERRCODE = 'insufficient_privilege',
                          HINT = format('GRANT EXECUTE ON FUNCTION %s TO %I', v_fn, current_user);
            END IF;
            v_expr := format('%I.%I()', v_proc.nspname, v_proc.proname);
        WHEN token_format = 'null' THEN
            IF p_previous_column IS NOT NULL OR p_rotated_at_column IS NOT NULL OR NOT EXISTS (
                SELECT FROM token_rotation.runs r
                 WHERE r.target = p_table AND r.state = 'finished' AND r.options->>'previous_column' = p_column) THEN
                RAISE EXCEPTION 'format null clears a previous column only'
                    USING ERRCODE = 'invalid_parameter_value',
                          DETAIL = format('no finished run of %s kept old tokens in column %s%s', v_target,
                                          quote_ident(p_column),
                                          CASE WHEN p_previous_column IS NOT NULL OR p_rotated_at_column IS NOT NULL
                                               THEN ', and a clearing run has no grace columns' ELSE '' END),
                          HINT = 'after a run with p_previous_column => ''previous_token'', clear it with '
                                 'p_column => ''previous_token'', p_format => ''null''';
            END IF;
            IF v_notnull THEN
                RAISE EXCEPTION 'column % of % is NOT NULL', quote_ident(p_column), v_target
                    USING ERRCODE = 'not_null_violation', HINT = 'format null needs a nullable column';
            END IF;
            v_expr := 'NULL';
    END CASE;

    -- a token that another table references must carry the new value over: ON UPDATE CASCADE
    SELECT string_agg(format('%I on %s (ON UPDATE %s)', c.conname, c.conrelid::regclass,
                             CASE c.confupdtype WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT'
                                  WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' END), ', ' ORDER BY c.conname)
      INTO v_fk
      FROM pg_constraint c
      JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = ANY (c.confkey)
     WHERE c.contype = 'f' AND c.confrelid = p_table AND a.attname = p_column AND c.confupdtype <> 'c';
    IF v_fk IS NOT NULL THEN
        RAISE EXCEPTION 'column % of % is referenced by a foreign key without ON UPDATE CASCADE',
                        quote_ident(p_column), v_target
            USING ERRCODE = 'dependent_objects_still_exist', DETAIL = format('constraint %s', v_fk),
                  HINT = 'recreate the constraint with ON UPDATE CASCADE, or rotate another column';
    END IF;

    set_list := format('%I = %s', p_column, v_expr);

    -- the grace columns: the row's old token (the right-hand side of SET sees the old row), the batch's time
    IF p_previous_column IS NOT NULL THEN
        SELECT a.atttypid, a.atttypmod, a.attgenerated, a.attnum INTO v_att
          FROM pg_attribute a
         WHERE a.attrelid = p_table AND a.attname = p_previous_column AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'column % of % does not exist', quote_ident(p_previous_column), v_target
                USING ERRCODE = 'undefined_column',
                      HINT = format('add it: ALTER TABLE %s ADD COLUMN %I %s', v_target, p_previous_column,
                                    format_type(v_coltype, v_typmod));
        END IF;
        IF p_previous_column = p_column OR v_att.atttypid <> v_coltype
           OR (v_att.atttypmod >= 0 AND v_att.atttypmod < v_typmod) OR (v_att.atttypmod >= 0 AND v_typmod < 0)
           OR v_att.attgenerated <> '' THEN
            RAISE EXCEPTION 'column % of % cannot hold the previous token', quote_ident(p_previous_column), v_target
                USING ERRCODE = 'datatype_mismatch',
                      DETAIL = format('it is %s%s; the token column %s is %s',
                                      format_type(v_att.atttypid, v_att.atttypmod),
                                      CASE WHEN v_att.attgenerated <> '' THEN ', generated'
                                           WHEN p_previous_column = p_column THEN ', the token column itself'
                                           ELSE '' END,
                                      quote_ident(p_column), format_type(v_coltype, v_typmod)),
                      HINT = format('use a stored column of type %s', format_type(v_coltype, v_typmod));
        END IF;
        set_list := format('%I = %I, ', p_previous_column, p_column) || set_list;
    END IF;
    IF p_rotated_at_column IS NOT NULL THEN
        SELECT a.atttypid, a.attgenerated INTO v_att
          FROM pg_attribute a
         WHERE a.attrelid = p_table AND a.attname = p_rotated_at_column AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'column % of % does not exist', quote_ident(p_rotated_at_column), v_target
                USING ERRCODE = 'undefined_column',
                      HINT = format('add it: ALTER TABLE %s ADD COLUMN %I timestamptz', v_target, p_rotated_at_column);
        END IF;
        IF v_att.atttypid <> 'timestamptz'::regtype OR v_att.attgenerated <> ''
           OR p_rotated_at_column IN (p_column, p_previous_column) THEN
            RAISE EXCEPTION 'column % of % cannot hold the rotation time', quote_ident(p_rotated_at_column), v_target
                USING ERRCODE = 'datatype_mismatch',
                      DETAIL = format('it is %s%s', format_type(v_att.atttypid, NULL),
                                      CASE WHEN v_att.attgenerated <> '' THEN ', generated' ELSE '' END),
                      HINT = 'use a stored timestamptz column of its own';
        END IF;
        set_list := set_list || format(', %I = pg_catalog.now()', p_rotated_at_column);
    END IF;
    IF (p_previous_column IS NOT NULL AND NOT has_column_privilege(p_table, p_previous_column, 'UPDATE'))
       OR (p_rotated_at_column IS NOT NULL AND NOT has_column_privilege(p_table, p_rotated_at_column, 'UPDATE')) THEN
        RAISE EXCEPTION 'permission denied to update the grace columns of %', v_target
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('role %s needs UPDATE on %s', current_user,
                                  concat_ws(' and ', quote_ident(p_previous_column), quote_ident(p_rotated_at_column))),
                  HINT = format('GRANT UPDATE ON %s TO %I', v_target, current_user);
    END IF;
END
$$;

COMMENT ON FUNCTION token_rotation_internal.token_value(regclass, name, text, text, name, name, boolean) IS
    'Checks a token format (uuid, hex:N, base64url:N, bytes:N with N >= 16, function:schema.fn of a role the '
    'caller trusts, null), its prefix, the grace columns and foreign keys against a table; returns the resolved '
    'format and the SET list of a batch''s UPDATE.';
