-- token_rotation.redact(text): the text made safe to store and to show, the rule of the driver's
-- errors.redact() written in SQL (a test compares the two): C0/C1 control characters and DEL stripped (a line
-- break, CR LF or a tab becomes a space), then every value shaped like a token the tool can write replaced,
-- with or without a prefix: bytea hex (\x...) by <bytes>, a uuid (hyphens or not) by <uuid>, 32 hex digits or
-- more by <hex>, a run of 20 or more base64url characters mixing upper case, lower case and digits by
-- <base64url>; and a libpq secret (password=, sslpassword=, ...secret=, the password of a URL) by ***.
-- Ordinary words and identifiers stay readable. For server text kept where other roles read it (last_error).
--   SELECT token_rotation.redact('duplicate key value (token)=(3f1e2d4c-5b6a-4789-8abc-def012345678)');
CREATE OR REPLACE FUNCTION token_rotation.redact(
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

COMMENT ON FUNCTION token_rotation.redact(text) IS
    'Text safe to store and show: control characters stripped, token-shaped values (uuid, hex, base64url, bytea) and libpq secrets replaced; the driver''s errors.redact() in SQL.';

-- token_rotation.redact(text, format, prefix): redact(text), and besides every value that has the exact shape
-- of a token of this format: for base64url:N, every run of ceil(4N/3) characters of its alphabet (plus the
-- part of the prefix in that alphabet), whatever it mixes, where redact() alone hides only the runs that mix
-- upper case, lower case and digits (about 2.5% of base64url:16 tokens have no digit). The other formats
-- always have a shape redact() knows. For the errors of a run, whose format is known: rotate() redacts the
-- error that ends a CALL with it before storing and raising it, hold() a run's hold reason. The rule of the
-- driver's errors.token_pattern(); a test compares the two.
--   SELECT token_rotation.redact('Key (token)=(tk_DhOaRzfbetnNpafeGExsqA) already exists', 'base64url:16', 'tk_');
CREATE OR REPLACE FUNCTION token_rotation.redact(
      p_text   text
    , p_format text
    , p_prefix text
)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- a run bounded by characters outside the alphabet; regular expressions repeat at most 255 times, so
    -- the length L is written as 200-character chunks and the rest (a prefix is at most 32 characters)
    SELECT CASE WHEN r.len IS NULL THEN token_rotation.redact(p_text)
                ELSE pg_catalog.regexp_replace(token_rotation.redact(p_text),
                         '(?<![A-Za-z0-9_-])'
                         || CASE WHEN r.len >= 200 THEN pg_catalog.format('(?:[A-Za-z0-9_-]{200}){%s}', r.len / 200)
                                 ELSE '' END
                         || pg_catalog.format('[A-Za-z0-9_-]{%s,%s}', r.len % 200, r.len % 200 + r.extra)
                         || '(?![A-Za-z0-9_-])', '<base64url>', 'g') END
      FROM (SELECT CASE WHEN p_format ~ '^base64url:[0-9]{1,4}$'
                        THEN (4 * pg_catalog.split_part(p_format, ':', 2)::integer + 2) / 3 END AS len,
                   pg_catalog.length(pg_catalog.substring(coalesce(p_prefix, ''), '[A-Za-z0-9_-]*$')) AS extra
           ) AS r
$$;

COMMENT ON FUNCTION token_rotation.redact(text, text, text) IS
    'redact(text), and every value shaped exactly like a token of this format and prefix (a base64url run of '
    'its length, whatever it mixes): for the errors of a run.';
