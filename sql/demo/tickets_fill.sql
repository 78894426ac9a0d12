-- One chunk of demo rows for the table of sql/demo/tickets.sql: row numbers first .. last, made on the server
-- by generate_series (no row crosses the wire); id and token come from their defaults. Run by
-- `token-rotation seed` once per chunk, each chunk in its own transaction, as a psycopg sql.SQL template
-- ({table} the quoted table name) with the two bounds bound as the parameters first and last.
INSERT INTO {table} (title, status, priority, assignee_id, created_at, updated_at)
SELECT 'ticket ' || g
     , (ARRAY['open', 'pending', 'solved', 'closed'])[1 + mod(g, 4)]
     , (1 + mod(g, 5))::smallint
     , nullif(mod(g, 97), 0)::integer
     , timestamptz '2020-01-01' + g * interval '1 minute'
     , timestamptz '2020-01-01' + g * interval '1 minute' + mod(g, 1440) * interval '1 minute'
  FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
