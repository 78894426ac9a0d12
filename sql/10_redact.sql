-- token_rotation_internal.redact(text): the text made safe to store and to show, the rule of the driver's
-- errors.redact() written in SQL (a test compares the two): C0/C1 control characters and DEL stripped (a line
-- break, CR LF or a tab becomes a space), then every value shaped like a token the tool can write replaced,
-- with or without a prefix: bytea hex (\x...) by <bytes>, a uuid (hyphens or not) by <uuid>, 32 hex digits or
-- more by <hex>, a run of 20 or more base64url characters mixing upper case, lower case and digits by
-- <base64url>; and a libpq secret (password=, sslpassword=, ...secret=, the password of a URL) by ***.
-- Ordinary words and identifiers stay readable. For server text kept where other roles read it (last_error).
--   SELECT token_rotation_internal.redact('duplicate key value (token)=(3f1e2d4c-5b6a-4789-8abc-def012345678)');
CREATE OR REPLACE FUNCTION token_rotation_internal.redact(
      p_text text
)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- one step per line, in the order of REDACTIONS in driver/token_rotation/errors.py, with its patterns
    SELECT s6.t
      FROM (SELECT pg_catalog.regexp_replace(
                       pg_catalog.translate(pg_catalog.replace(p_text, E'\r\n', ' '), E'\n\r\t', '   '),
                       '[\x01-\x08\x0b-\x1f\x7f-\x9f]', '', 'g') AS t) AS s0
     CROSS JOIN LATERAL (SELECT pg_catalog.regexp_replace(s0.t, '\\x[0-9a-fA-F]+', '<bytes>', 'g') AS t) AS s1
     CROSS JOIN LATERAL (SELECT pg_catalog.regexp_replace(s1.t,
                '[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}', '<uuid>', 'g') AS t) AS s2
     CROSS JOIN LATERAL (SELECT pg_catalog.regexp_replace(s2.t, '[0-9a-fA-F]{32,}', '<hex>', 'g') AS t) AS s3
     CROSS JOIN LATERAL (SELECT pg_catalog.regexp_replace(s3.t,
                '(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[a-z])(?=[A-Za-z0-9_-]*[0-9])'
                '[A-Za-z0-9_-]{20,}', '<base64url>', 'g') AS t) AS s4
     CROSS JOIN LATERAL (SELECT pg_catalog.regexp_replace(s4.t,
                '(?i)([a-z_]*(password|secret)\s*=\s*)(''[^'']*''\S*|\S+)', '\1***', 'g') AS t) AS s5
     CROSS JOIN LATERAL (SELECT pg_catalog.regexp_replace(s5.t, '(://[^:/@\s]*:)[^@\s]*@', '\1***@', 'g') AS t) AS s6
$$;

COMMENT ON FUNCTION token_rotation_internal.redact(text) IS
    'Text safe to store and show: control characters stripped, token-shaped values (uuid, hex, base64url, bytea) and libpq secrets replaced; the driver''s errors.redact() in SQL.';
