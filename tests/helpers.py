"""Helpers shared by the tests: demo tables of any key type, snapshots, and the exactly-once check."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import psycopg
from click.testing import CliRunner, Result
from psycopg import sql

from token_rotation.cli import cli

KEY_EXPRESSIONS = {
    # key type -> SQL expression of the generate_series value g giving a distinct, orderable key
    "integer": "g",
    "bigint": "g::bigint * 1000",
    "uuid": "md5(g::text)::uuid",
    "text": "'key-' || lpad(g::text, 9, '0')",
}


def make_table(
    conn: psycopg.Connection,
    name: str = "tickets",
    rows: int = 1000,
    key_type: str = "bigint",
    *,
    token_column: str = "token",
    unique_token: bool = True,
    key_expr: str | None = None,
    schema: str = "public",
) -> None:
    """Creates a tickets-like table: a primary key of `key_type`, a uuid token, and ordinary columns."""
    ident = sql.Identifier(schema, name)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(ident))
    conn.execute(
        sql.SQL(
            "CREATE TABLE {t} (id {kt} PRIMARY KEY, {tok} uuid NOT NULL{uq} DEFAULT gen_random_uuid(),"
            " title text NOT NULL, status integer NOT NULL, amount numeric, created_at timestamptz NOT NULL)"
        ).format(
            t=ident,
            kt=sql.SQL(key_type),
            tok=sql.Identifier(token_column),
            uq=sql.SQL(" UNIQUE" if unique_token else ""),
        )
    )
    expr = key_expr or KEY_EXPRESSIONS[key_type]
    conn.execute(
        sql.SQL(
            "INSERT INTO {t} (id, title, status, amount, created_at)"
            " SELECT {e}, 'ticket ' || g, g %% 7, g / 3.0, timestamptz '2026-01-01' + g * interval '1 second'"
            " FROM generate_series(1, %s) AS g"
        ).format(t=ident, e=sql.SQL(expr)),
        (rows,),
    )
    conn.execute(sql.SQL("ANALYZE {}").format(ident))


@dataclass
class Snapshot:
    """The state of a table before a rotation: each key's token and a digest of its other columns."""

    tokens: dict[str, str]
    others: dict[str, str]


def snapshot(
    conn: psycopg.Connection, table: str = "tickets", token_column: str = "token", key: str = "id"
) -> Snapshot:
    """Token and a digest of every other column, per row identified by the column `key` (as text), read in
    one statement."""
    rows = conn.execute(
        sql.SQL("SELECT t.{k}::text, {tok}::text, md5((to_jsonb(t) - %s)::text) FROM {t} AS t").format(
            k=sql.Identifier(key), tok=sql.Identifier(token_column), t=sql.SQL(table)
        ),
        (token_column,),
    ).fetchall()
    return Snapshot({r[0]: r[1] for r in rows}, {r[0]: r[2] for r in rows})


def table_checksum(conn: psycopg.Connection, table: str = "tickets") -> str:
    """A digest of the whole table, order-independent: equal before and after means nothing changed."""
    rows = conn.execute(
        sql.SQL("SELECT md5(t::text) FROM {} AS t ORDER BY 1").format(sql.SQL(table))
    ).fetchall()
    return hashlib.sha256("".join(r[0] for r in rows).encode()).hexdigest()


def assert_rotated_exactly_once(
    conn: psycopg.Connection,
    before: Snapshot,
    run_id: int,
    table: str = "tickets",
    token_column: str = "token",
    *,
    deleted_ok: bool = False,
    key: str = "id",
) -> None:
    """The full check every rotation test ends with: the run is finished; every row of the snapshot that
    still exists has a new token, and no new token is any row's old one (a token reused from another row
    would pass a per-row check); tokens are unique; other columns unchanged; the committed checkpoints cover
    every surviving row of the snapshot; and the progress log covers the key range with exactly one committed
    batch per key (no gap, no overlap: token_rotation.verify) whose rows add up to the table's."""
    after = snapshot(conn, table, token_column, key)
    missing = set(before.tokens) - set(after.tokens)
    assert deleted_ok or not missing, f"{len(missing)} rows disappeared"
    kept = [k for k in before.tokens if k in after.tokens]
    unchanged = [k for k in kept if after.tokens[k] == before.tokens[k]]
    assert not unchanged, f"{len(unchanged)} of {len(kept)} rows kept their old token"
    reused = set(before.tokens.values()) & set(after.tokens.values())
    assert not reused, f"{len(reused)} new tokens are old tokens of some row"
    assert len(set(after.tokens.values())) == len(after.tokens), "tokens are not unique"
    changed_other = [k for k in kept if after.others[k] != before.others[k]]
    assert not changed_other, f"{len(changed_other)} rows had other columns changed"
    state = conn.execute("SELECT state FROM token_rotation.runs WHERE run_id = %s", (run_id,)).fetchone()
    assert state == ("finished",), f"run {run_id} is {state}"
    uncovered = set(kept) - checkpointed_keys(conn, run_id, table, key)
    assert not uncovered, f"{len(uncovered)} rows lie beyond every slice's checkpoint"
    checks = conn.execute(
        "SELECT check_name, ok, detail FROM token_rotation.verify(%s)", (run_id,)
    ).fetchall()
    failed = [c for c in checks if not c[1]]
    assert not failed, f"verify failed: {failed}"
    assert len(checks) >= 5, f"verify ran {len(checks)} checks"
    logged = conn.execute(
        "SELECT coalesce(sum(rows), 0) FROM token_rotation.batches WHERE run_id = %s", (run_id,)
    ).fetchone()
    assert logged is not None
    if not deleted_ok:
        assert logged[0] == len(before.tokens), f"log counts {logged[0]} rows, table had {len(before.tokens)}"


def checkpointed_keys(
    conn: psycopg.Connection, run_id: int, table: str = "tickets", key: str = "id"
) -> set[str]:
    """The rows (their column `key`, as text) that the run's committed checkpoints cover: each slice's
    lo < k <= last_key, k the run's key (one column or several, compared as a row)."""
    row = conn.execute(
        "SELECT r.key_columns::text[], array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord)"
        " FROM token_rotation.runs r CROSS JOIN unnest(r.key_columns) WITH ORDINALITY AS k(name, ord)"
        " JOIN pg_attribute a ON a.attrelid = r.target AND a.attname = k.name"
        " WHERE r.run_id = %s GROUP BY r.key_columns",
        (run_id,),
    ).fetchone()
    assert row is not None
    columns = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in row[0])

    def bound(name: str) -> sql.Composable:
        return sql.SQL(", ").join(
            sql.SQL("s.{}[{}]::{}").format(sql.Identifier(name), sql.Literal(i + 1), sql.SQL(kt))
            for i, kt in enumerate(row[1])
        )

    return {
        r[0]
        for r in conn.execute(
            sql.SQL(
                "SELECT t.{k}::text FROM {t} t JOIN token_rotation.slices s ON s.run_id = %s"
                " AND (s.lo IS NULL OR ROW({c}) > ROW({lo})) AND ROW({c}) <= ROW({last})"
            ).format(
                k=sql.Identifier(key), t=sql.SQL(table), c=columns, lo=bound("lo"), last=bound("last_key")
            ),
            (run_id,),
        )
    }


def assert_checkpoints_match_the_data(
    conn: psycopg.Connection, before: Snapshot, table: str = "tickets"
) -> int:
    """Mid-run, after a fault: the rows whose token changed are exactly the rows the committed checkpoints
    cover (each slice's keys k with lo < k <= last_key), and the log's row count is theirs: no committed
    batch lost, no uncommitted one kept, no row rotated without its log row. Returns the rows done."""
    run_id = last_run_id(conn, table)
    covered = checkpointed_keys(conn, run_id, table)
    now = snapshot(conn, table)
    changed = {k for k, tok in now.tokens.items() if k in before.tokens and before.tokens[k] != tok}
    assert len(changed ^ covered) == 0, (
        f"{len(changed - covered)} changed outside, {len(covered - changed)} missed"
    )
    logged = conn.execute(
        "SELECT coalesce(sum(rows), 0) FROM token_rotation.batches WHERE run_id = %s", (run_id,)
    ).fetchone()
    assert logged == (len(changed),), f"log counts {logged}, {len(changed)} rows changed"
    done = conn.execute(
        "SELECT coalesce(sum(rows_done), 0) FROM token_rotation.slices WHERE run_id = %s", (run_id,)
    ).fetchone()
    assert done == (len(changed),), f"slices count {done}, {len(changed)} rows changed"
    return len(changed)


def rows_done(conn: psycopg.Connection, table: str = "tickets") -> int:
    """Rows done by the table's newest run, from its slices' committed checkpoints (0 before it exists)."""
    row = conn.execute(
        "SELECT coalesce(sum(s.rows_done), 0) FROM token_rotation.slices s"
        " WHERE s.run_id = (SELECT max(run_id) FROM token_rotation.runs WHERE target = to_regclass(%s))",
        (table,),
    ).fetchone()
    return int(row[0]) if row else 0


def assert_mid_run(conn: psycopg.Connection, total: int, table: str = "tickets") -> int:
    """Proves from server state that the newest run is in the middle: rows done strictly between 0 and
    `total`. Returns the rows done."""
    done = rows_done(conn, table)
    assert 0 < done < total, f"{done} of {total} rows done: not mid-run"
    return done


def last_run_id(conn: psycopg.Connection, table: str = "tickets") -> int:
    row = conn.execute(
        "SELECT max(run_id) FROM token_rotation.runs WHERE target = to_regclass(%s)", (table,)
    ).fetchone()
    assert row is not None and row[0] is not None, f"no run of {table}"
    return int(row[0])


def throttled(conn: psycopg.Connection, table: str = "tickets") -> str:
    """Why the workers of the table's newest run wait (progress.throttled), '' while they do not."""
    row = conn.execute(
        "SELECT coalesce(p.throttled, '') FROM token_rotation.progress p"
        " WHERE p.run_id = (SELECT max(run_id) FROM token_rotation.runs WHERE target = to_regclass(%s))",
        (table,),
    ).fetchone()
    return str(row[0]) if row else ""


def run(dsn: str, *args: str, env: dict[str, str] | None = None) -> Result:
    """Invokes the CLI on the test database (stdout is not a terminal: plain lines)."""
    return CliRunner().invoke(cli, ["--dsn", dsn, *args], env=env, catch_exceptions=False)


def events(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
