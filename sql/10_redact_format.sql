-- token_rotation_internal.redact(text, format, prefix): redact(text), and besides every value that has the exact shape
-- of a token of this format: for base64url:N, every run of ceil(4N/3) characters of its alphabet (plus the
-- part of the prefix in that alphabet), whatever it mixes, where redact() alone hides only the runs that mix
-- upper case, lower case and digits (about 2.5% of base64url:16 tokens have no digit). The other formats
-- always have a shape redact() knows. For the errors of a run, whose format is known: rotate() redacts the
-- error that ends a CALL with it before storing and raising it, hold() a run's hold reason. The rule of the
-- driver's errors.token_pattern(); a test compares the two.
--   SELECT token_rotation_internal.redact('Key (token)=(tk_DhOaRzfbetnNpafeGExsqA) already exists', 'base64url:16', 'tk_');
CREATE OR REPLACE FUNCTION token_rotation_internal.redact(
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
    SELECT CASE WHEN r.len IS NULL THEN token_rotation_internal.redact(p_text)
                ELSE pg_catalog.regexp_replace(token_rotation_internal.redact(p_text),
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

COMMENT ON FUNCTION token_rotation_internal.redact(text, text, text) IS
    'redact(text), and every value shaped exactly like a token of this format and prefix (a base64url run of '
    'its length, whatever it mixes): for the errors of a run.';
