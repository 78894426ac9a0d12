"""Errors for users and the exit codes of the command line.

A PostgreSQL error becomes one line, the server's own message and HINT, and an exit code chosen by its
SQLSTATE (never by its text). Whatever text comes from the server passes through `redact()`, which hides
anything shaped like a uuid or a password, so no token and no password can reach the terminal or a log.
"""

from __future__ import annotations

import re
from typing import IO, Any

import click
import psycopg

EXIT_OK = 0
EXIT_OTHER = 1
EXIT_BAD_INPUT = 2
EXIT_BUSY = 3
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_OTHER: "any other error (server down, lost connection, permission denied, ...)",
    EXIT_BAD_INPUT: "bad input: unknown table or column, wrong type, invalid option or DSN, no open run",
    EXIT_BUSY: "another run holds the table (every unfinished slice is taken)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C, SIGTERM, pg_cancel_backend); committed batches are kept",
}

# SQLSTATEs that mean "the input was wrong" although their class says otherwise
_BAD_INPUT_STATES = {
    "0A000",
    "23502",
    "02000",
    "P0002",
    "3F000",
    "42P01",
    "42703",
    "42804",
    "42809",
    "42P16",
    "42883",
}
_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)|(://[^:/@\s]*:)([^@\s]*)(@)", re.IGNORECASE)


class ToolError(click.ClickException):
    """An error for users: one line of what went wrong and what to do, and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_OTHER) -> None:
        super().__init__(redact(message))
        self.exit_code = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


def redact(text: str) -> str:
    """The text with every uuid-shaped value and every password replaced by <uuid> / ***."""
    text = _UUID.sub("<uuid>", text)

    def _mask(m: re.Match[str]) -> str:
        if m.group(1):
            return f"{m.group(1)}***"
        return f"{m.group(3)}***{m.group(5)}"

    return _PASSWORD.sub(_mask, text)


def exit_code_for(sqlstate: str | None) -> int:
    """The exit code for a PostgreSQL error, by its SQLSTATE."""
    if not sqlstate:
        return EXIT_OTHER
    if sqlstate == "57014":  # query_canceled: Ctrl-C, pg_cancel_backend
        return EXIT_INTERRUPTED
    if sqlstate == "55006":  # object_in_use: another run holds the table
        return EXIT_BUSY
    if sqlstate in _BAD_INPUT_STATES or sqlstate.startswith("22"):
        return EXIT_BAD_INPUT
    if sqlstate.startswith("42") and sqlstate != "42501":  # 42501: permission denied is not bad input
        return EXIT_BAD_INPUT
    return EXIT_OTHER


def describe(exc: psycopg.Error, *, with_detail: bool = False) -> str:
    """One line: the server's message, its DETAIL when asked (never for data errors, whose DETAIL can
    quote a row), and its HINT."""
    diag = exc.diag
    message = diag.message_primary or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    parts = [message]
    sqlstate = diag.sqlstate or ""
    if with_detail and diag.message_detail and not sqlstate.startswith("23"):
        parts.append(diag.message_detail)
    line = "; ".join(parts)
    if diag.message_hint:
        line += f" (hint: {diag.message_hint})"
    return redact(line)


def from_pg(exc: psycopg.Error) -> ToolError:
    """A ToolError for a PostgreSQL error: message, HINT, exit code by SQLSTATE."""
    sqlstate = exc.sqlstate
    if isinstance(exc, psycopg.OperationalError) and sqlstate is None:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "connection failed"
        return ToolError(f"cannot connect: {first}", EXIT_OTHER)
    if sqlstate in ("3F000", "42883") and "token_rotation" in (exc.diag.message_primary or ""):
        return ToolError(
            "token_rotation is not installed in this database (run: token-rotation install)", EXIT_OTHER
        )
    code = exit_code_for(sqlstate)
    return ToolError(describe(exc, with_detail=sqlstate in ("55006", "57014", "55P03")), code)
