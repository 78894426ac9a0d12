"""Nothing secret leaves the database: no token value (old or new) and no password in anything the tool
prints (plain, --json, errors), in any NOTICE, in the server log of the run, or in the tool's tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from token_rotation import embedded, migrate

from background import cli_env, cli_in_a_terminal, run_cli
from helpers import make_table, snapshot
from roles import grant_recipe, temporary_role

PASSWORD = "Pw-9c41-never-print-me"
HEXISH = re.compile(r"[0-9a-fA-F][0-9a-fA-F-]{30,}[0-9a-fA-F]")
# any uuid-shaped string, known or not (a token drawn in a batch that was rolled back is in no table)
UUID_SHAPED = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")

# settings that make the server log as much as it can about the run
LOUD_LOG = {
    "log_statement": "all",
    "log_min_messages": "info",
    "log_min_error_statement": "info",
    "log_min_duration_statement": "0",
    "log_error_verbosity": "verbose",
    "log_connections": "on",
    "log_disconnections": "on",
}


def token_hits(text: str, tokens: set[str]) -> int:
    """How many token values occur in the text, in any spelling: with or without hyphens, any case."""
    hits = 0
    for match in HEXISH.finditer(text):
        digits = match.group(0).replace("-", "").lower()
        hits += sum(digits[i : i + 32] in tokens for i in range(len(digits) - 31))
    return hits


def all_tokens(conn: psycopg.Connection) -> set[str]:
    """The table's current token values, as 32 lower-case hex digits."""
    return {t.replace("-", "") for t in snapshot(conn).tokens.values()}


@pytest.mark.slow
def test_no_token_and_no_password_in_output_notices_server_log_or_tool_tables(tmp_path: Path) -> None:
    """A role with a password rotates through the CLI (plain, --json and on a terminal, a failing batch whose
    PostgreSQL DETAIL quotes the row with its new token, a unique-violation retry whose DETAIL quotes a token,
    status, verify) and through CALL with NOTICEs, on a dedicated server logging every statement, connection
    and message. No token value, old or new, and not the password, occurs in any of it; and the CLI's output
    (plain and JSON), the NOTICEs and the tool's tables hold no uuid-shaped string at all, known or not."""
    pgdata = tmp_path / "pgdata"
    url = embedded.start(pgdata)
    outputs: dict[str, str] = {}
    tokens: set[str] = set()
    try:
        migrate.upgrade(url)
        admin = psycopg.connect(url, autocommit=True)
        make_table(admin, rows=2000)
        tokens |= all_tokens(admin)
        with temporary_role(admin, "tr_secret", password=PASSWORD) as role:
            grant_recipe(admin, role)
            for name, value in LOUD_LOG.items():
                admin.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
                )
            admin.execute("SELECT pg_reload_conf()")
            log = pgdata / "log"
            log_start = log.stat().st_size
            dsn = make_conninfo(url, user=role, password=PASSWORD)
            has_password = conninfo_to_dict(dsn).get("password") == PASSWORD
            assert has_password

            # a DBA's CALL: every NOTICE, with all its fields
            notices: list[str] = []
            with psycopg.connect(dsn, autocommit=True, application_name="tr-secret-dba") as dba:
                dba.add_notice_handler(
                    lambda d: notices.append(
                        " | ".join(
                            str(x) for x in (d.message_primary, d.message_detail, d.message_hint, d.context)
                        )
                    )
                )
                dba.execute("CALL token_rotation.rotate('tickets', p_batch_size => 200, p_max_batches => 3)")
            outputs["notices"] = "\n".join(notices)
            assert len(notices) >= 4

            # a batch fails: PostgreSQL's DETAIL would be 'Failing row contains (..., <new token>, ...)'
            admin.execute("UPDATE tickets SET status = 99 WHERE id = 1500000")
            admin.execute("ALTER TABLE tickets ADD CONSTRAINT no_99 CHECK (status <> 99) NOT VALID")
            failed = run_cli(dsn, "rotate", "--table", "tickets", "--batch-size", "200")
            assert failed.returncode == 1  # a failed batch: any other error
            says_why = "no_99" in failed.stderr
            assert says_why
            outputs["cli rotate (failing batch)"] = failed.stdout + failed.stderr
            failed_json = run_cli(dsn, "rotate", "--table", "tickets", "--batch-size", "200", "--json")
            assert failed_json.returncode == 1
            outputs["cli rotate --json (failing batch)"] = failed_json.stdout + failed_json.stderr
            admin.execute("ALTER TABLE tickets DROP CONSTRAINT no_99")
            tokens |= all_tokens(admin)

            # a new token that collides (once): its DETAIL would be 'Key (token)=(<token>) already exists'
            admin.execute("CREATE SEQUENCE collide")
            admin.execute("""
                CREATE FUNCTION force_collision() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.id = 1900000 AND nextval('collide') = 1 THEN
                        NEW.token := (SELECT token FROM tickets WHERE id = 2000000);
                    END IF;
                    RETURN NEW;
                END $$""")
            admin.execute(
                "CREATE TRIGGER force_collision BEFORE UPDATE ON tickets"
                " FOR EACH ROW EXECUTE FUNCTION force_collision()"
            )
            admin.execute(sql.SQL("GRANT USAGE ON SEQUENCE collide TO {}").format(sql.Identifier(role)))
            done = run_cli(
                dsn, "rotate", "--table", "tickets", "--batch-size", "200", "--progress-interval", "0.05"
            )
            assert done.returncode == 0, "rotate failed"
            outputs["cli rotate (plain)"] = done.stdout + done.stderr
            assert admin.execute("SELECT sum(retries) FROM token_rotation.batches").fetchone() == (1,)
            tokens |= all_tokens(admin)

            # a second run with --json, stopped early and resumed, then status and verify
            for name, args in {
                "cli rotate --json --max-batches": (
                    "rotate",
                    "--table",
                    "tickets",
                    "--json",
                    "--batch-size",
                    "300",
                    "--max-batches",
                    "2",
                ),
                "cli rotate --json": (
                    "rotate",
                    "--table",
                    "tickets",
                    "--json",
                    "--batch-size",
                    "300",
                    "--progress-interval",
                    "0.05",
                ),
                "cli status": ("status",),
                "cli status --json": ("status", "--json"),
                "cli verify": ("verify",),
                "cli verify --json": ("verify", "--json"),
            }.items():
                result = run_cli(dsn, *args)
                assert result.returncode == 0, f"{name} failed"
                outputs[name] = result.stdout + result.stderr
            for line in outputs["cli rotate --json"].splitlines():
                json.loads(line)
            tokens |= all_tokens(admin)
            code, outputs["cli rotate (terminal)"] = cli_in_a_terminal(
                dsn,
                "rotate",
                "--table",
                "tickets",
                "--batch-size",
                "100",
                "--sleep",
                "10ms",
                env={**cli_env(), "TERM": "xterm-256color", "COLUMNS": "160"},
            )
            assert code == 0
            assert "rows/s" in outputs["cli rotate (terminal)"]
            tokens |= all_tokens(admin)

            # the tool's own tables and views, whole
            for table in ("runs", "slices", "batches", "progress"):
                rows = admin.execute(
                    sql.SQL("SELECT to_jsonb(t)::text FROM token_rotation.{} AS t").format(
                        sql.Identifier(table)
                    )
                ).fetchall()
                outputs[f"table token_rotation.{table}"] = "\n".join(r[0] for r in rows)
            checks = admin.execute(
                "SELECT v::text FROM token_rotation.runs r, token_rotation.verify(r.run_id) AS v"
            ).fetchall()
            outputs["verify()"] = "\n".join(r[0] for r in checks)

            with log.open(encoding="utf-8", errors="replace") as f:
                f.seek(log_start)
                outputs["server log"] = f.read()
            assert (
                "tr-secret-dba" in outputs["server log"]
                and "CALL token_rotation.rotate" in outputs["server log"]
            )
    finally:
        embedded.stop(pgdata, mode="immediate")

    # the scanner finds a token however it is spelled (a test that cannot fail is no test). Assertions
    # compare counts only: pytest would print the values of anything else they mention.
    sample = next(iter(tokens))
    hyphenated = f"({sample[:8]}-{sample[8:12]}-{sample[12:16]}-{sample[16:20]}-{sample[20:]})"
    found = (token_hits(f"x{sample.upper()}y", tokens), token_hits(hyphenated, tokens))
    assert found == (1, 1)
    collected = len(tokens)
    assert collected >= 2000 * 4  # the old tokens and those of the three runs

    shaped = f"x{sample}y {hyphenated} {hyphenated.upper()}"
    assert len(UUID_SHAPED.findall(shaped)) == 3
    uuid_like = {
        name: len(UUID_SHAPED.findall(text))
        for name, text in outputs.items()
        if name.startswith(("cli", "notices", "table", "verify"))
    }
    assert len(uuid_like) == 16
    assert {name: n for name, n in uuid_like.items() if n} == {}, (
        "uuid-shaped strings in output (counts only)"
    )
    leaks = {name: token_hits(text, tokens) for name, text in outputs.items()}
    assert {name: n for name, n in leaks.items() if n} == {}, "token values leaked (counts only)"
    passwords = [name for name, text in outputs.items() if PASSWORD in text]
    assert passwords == [], "the password leaked"
