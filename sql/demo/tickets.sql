-- Demo table, like the original Django `Ticket` model: a bigint identity key, the secret `token` (unique,
-- filled by gen_random_uuid() on insert) and a few ordinary columns. Not part of the installed tool (it is
-- not in the sql/*.sql glob that migrations/freeze.py reads): `token-rotation seed` reads this file and runs it
-- as a psycopg sql.SQL template, {table} being the quoted table name. To try it in psql, replace {table}.
CREATE TABLE {table} (
      id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY
    , token       uuid        NOT NULL UNIQUE DEFAULT gen_random_uuid()
    , title       text        NOT NULL
    , status      text        NOT NULL DEFAULT 'open'
    , priority    smallint    NOT NULL DEFAULT 3
    , assignee_id integer
    , created_at  timestamptz NOT NULL DEFAULT now()
    , updated_at  timestamptz NOT NULL DEFAULT now()
    , CONSTRAINT status_check CHECK (status IN ('open', 'pending', 'solved', 'closed'))
);

COMMENT ON TABLE {table} IS 'token-rotation demo table (created by token-rotation seed)';
