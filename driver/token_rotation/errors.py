"""Errors for users and the exit codes of the command line.

A PostgreSQL error becomes one line, the server's own message and HINT, and an exit code chosen by its
SQLSTATE (never by its text). Whatever text comes from the server passes through `redact()`, which hides
anything shaped like a token the tool can write (uuid, hex, base64url, bytea, with or without a prefix) or a
password, and strips control characters, so no token, no password and no terminal escape can reach the
terminal or a log. token_rotation_internal.redact() (sql/10_redact.sql) is the same rule in SQL, with the same
patterns (REDACTIONS), for what the database stores.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Any

import click
import psycopg
from psycopg import errors as pg_errors

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

# exit code 2 (bad input): what the caller fixes by asking otherwise: these, every data exception (class 22)
# and every syntax or access rule violation (class 42) but permission denied
_BAD_INPUT_CLASSES = ("22", "42")
_BAD_INPUT = (
    pg_errors.FeatureNotSupported,
    pg_errors.NotNullViolation,
    pg_errors.NoData,
    pg_errors.NoDataFound,
    pg_errors.InvalidSchemaName,
    pg_errors.DependentObjectsStillExist,  # a foreign key to the token without ON UPDATE CASCADE
)
# What redact() hides, in this order: (pattern, replacement), each written so that Python's re and
# PostgreSQL's regular expressions (AREs) read it alike, flags embedded ((?i)); sql/10_redact.sql applies the
# same list with regexp_replace(..., 'g') (a test compares the two on samples).
REDACTIONS: tuple[tuple[str, str], ...] = (
    # bytea in its hex output form: \x and hex digits (bytes:N)
    (r"\\x[0-9a-fA-F]+", "<bytes>"),
    # uuid, with or without hyphens (uuid, function: formats)
    (r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}", "<uuid>"),
    # 32 hex digits or more (hex:16 and longer; behind a prefix too)
    (r"[0-9a-fA-F]{32,}", "<hex>"),
    # a run of 20 or more base64url characters that mixes upper case, lower case and digits (base64url:15
    # and longer; a prefix of that alphabet is part of the run): words and identifiers rarely mix all three
    (
        r"(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[a-z])(?=[A-Za-z0-9_-]*[0-9])"
        r"[A-Za-z0-9_-]{20,}",
        "<base64url>",
    ),
    # libpq secrets in key=value form (password, sslpassword, oauth_client_secret, ...) and in a URL
    (r"(?i)([a-z_]*(password|secret)\s*=\s*)('[^']*'\S*|\S+)", r"\1***"),
    (r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@"),
)
_REDACTIONS = [(re.compile(pattern), replacement) for pattern, replacement in REDACTIONS]
# C0 and C1 control characters and DEL: a terminal takes them as commands (escape sequences, bell, cursor
# moves); line breaks and tabs become a space (every field shown is one line), the others go
_BREAKS = str.maketrans({"\n": " ", "\r": " ", "\t": " "})
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# a parameter name of a routine (p_column), not part of a qualified or quoted name (public.p_x, "p_x")
_PARAMETER = re.compile(r"(?<![\w.\"])p_([a-z][a-z0-9]*(?:_[a-z0-9]+)*)\b(?![.\"])")
# the server's goodbye: pg_terminate_backend or a shutdown, a crash, a connection failure
_LOST = (pg_errors.AdminShutdown, pg_errors.CrashShutdown, pg_errors.ConnectionFailure)


class ToolError(click.ClickException):
    """An error for users: one line of what went wrong and what to do, and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_OTHER) -> None:
        super().__init__(redact(message))
        self.exit_code = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


def redact(text: str) -> str:
    """Server text made safe to show: control characters stripped (a line break becomes a space), every
    token-shaped value replaced by <uuid>, <hex>, <base64url> or <bytes>, every password by ***; within
    protecting(), every value shaped exactly like a token of the formats protect() named too. The same rule
    as token_rotation_internal.redact() in SQL."""
    text = printable(text)
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    for pattern in _PROTECTED.get() or ():
        text = pattern.sub("<base64url>", text)
    return text


# the exact token shapes that redact() hides besides REDACTIONS, for the command under way (a context, so
# that a test or a Django process running several commands does not carry one's formats into the next)
_PROTECTED: ContextVar[list[re.Pattern[str]] | None] = ContextVar("protected", default=None)


@contextmanager
def protecting() -> Iterator[None]:
    """Within it, redact() also hides the tokens of every format that protect() names (a run's own)."""
    reset = _PROTECTED.set([])
    try:
        yield
    finally:
        _PROTECTED.reset(reset)


def protect(token_format: str | None, prefix: str | None) -> None:
    """From now on within protecting(), redact() hides every value of the exact shape of a token of this
    format: REDACTIONS miss the base64url tokens that lack a digit (about 2.5% of base64url:16)."""
    pattern = token_pattern(token_format, prefix)
    shown = _PROTECTED.get()
    if pattern is not None and shown is not None and pattern not in (p.pattern for p in shown):
        shown.append(re.compile(pattern))


def token_pattern(token_format: str | None, prefix: str | None) -> str | None:
    """The pattern of every run of exactly as many base64url characters as a token of this format has (plus
    the part of the prefix in that alphabet), whatever it mixes; None for a format whose every token has a
    shape REDACTIONS know (uuid, hex:N, bytes:N). The rule of token_rotation_internal.redact(text, format,
    prefix): chunks of 200, as PostgreSQL's regular expressions repeat at most 255 times."""
    found = re.fullmatch(r"base64url:([0-9]{1,4})", token_format or "")
    if found is None:
        return None
    length = (4 * int(found.group(1)) + 2) // 3
    tail = re.search(r"[A-Za-z0-9_-]*$", prefix or "")
    extra = len(tail.group()) if tail else 0
    chunks = f"(?:[A-Za-z0-9_-]{{200}}){{{length // 200}}}" if length >= 200 else ""
    return (
        rf"(?<![A-Za-z0-9_-]){chunks}[A-Za-z0-9_-]{{{length % 200},{length % 200 + extra}}}(?![A-Za-z0-9_-])"
    )


def printable(text: str) -> str:
    """The text without C0/C1 control characters and DEL; line breaks and tabs become a space. For names
    (a table's quoted name may hold any character) that are shown as they are otherwise."""
    return _CONTROLS.sub("", text.replace("\r\n", " ").translate(_BREAKS))


def cli_flags(text: str) -> str:
    """The text with each procedure parameter name replaced by the command-line flag that sets it
    (p_column -> --column, p_batch_size -> --batch-size): the server speaks SQL, the user types flags."""
    return _PARAMETER.sub(lambda m: "--" + m.group(1).replace("_", "-"), text)


def connection_lost(exc: BaseException) -> bool:
    """Whether an error means that an established session to the server ended under us (server crash or
    shutdown, pg_terminate_backend, network), as opposed to a connection attempt that failed: the server's
    goodbye SQLSTATE, or libpq's own "server closed the connection" / "consuming input failed". Where the
    connection is at hand, psycopg says it itself (conn.broken: the workers, rotation.Rotation.lost); this
    is for an error that arrives without it."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    if isinstance(exc, _LOST):
        return True
    text = str(exc).lower()
    return not exc.sqlstate and any(phrase in text for phrase in _LOST_PHRASES)


_LOST_PHRASES = ("server closed the connection", "consuming input failed", "connection is lost")


def lost_message(exc: BaseException, resume: str | None = None) -> str:
    """What to say when the connection to the server was lost in the middle of a run: why (the first line
    of the error), that every committed batch is kept, and the command that resumes."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].strip()
    text = f"the connection to the server was lost ({reason}); every committed batch is kept"
    return redact(f"{text}; resume with: {resume}" if resume else text)


def exit_code_for(sqlstate: str | None) -> int:
    """The exit code for a PostgreSQL error, by its SQLSTATE (through psycopg's class for it)."""
    error: type[psycopg.Error] = psycopg.Error  # none, a code of the tool's own (TROPT ...) or unknown
    if sqlstate:
        with contextlib.suppress(KeyError):
            error = pg_errors.lookup(sqlstate)
    if issubclass(error, pg_errors.QueryCanceled):  # Ctrl-C, pg_cancel_backend
        return EXIT_INTERRUPTED
    if issubclass(error, pg_errors.ObjectInUse):  # another run holds the table
        return EXIT_BUSY
    if issubclass(error, pg_errors.InsufficientPrivilege):  # permission denied is not bad input
        return EXIT_OTHER
    if issubclass(error, _BAD_INPUT) or (sqlstate or "")[:2] in _BAD_INPUT_CLASSES:
        return EXIT_BAD_INPUT
    return EXIT_OTHER


def describe(exc: psycopg.Error, *, with_detail: bool = False) -> str:
    """One line: the server's message, its DETAIL when asked (never for data errors, whose DETAIL can
    quote a row), and its HINT."""
    diag = exc.diag
    message = diag.message_primary or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    parts = [message]
    if with_detail and diag.message_detail and not isinstance(exc, psycopg.IntegrityError):  # class 23
        parts.append(diag.message_detail)
    line = "; ".join(parts)
    if diag.message_hint:
        line += f" (hint: {diag.message_hint})"
    return cli_flags(redact(line))


def from_pg(exc: psycopg.Error) -> ToolError:
    """A ToolError for a PostgreSQL error: message, HINT, exit code by SQLSTATE."""
    sqlstate = exc.sqlstate
    if connection_lost(exc):
        return ToolError(lost_message(exc), EXIT_OTHER)
    if isinstance(exc, psycopg.OperationalError) and sqlstate is None:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "connection failed"
        return ToolError(f"cannot connect: {first}", EXIT_OTHER)
    missing = (pg_errors.InvalidSchemaName, pg_errors.UndefinedFunction)
    if isinstance(exc, missing) and "token_rotation" in (exc.diag.message_primary or ""):
        return ToolError(
            "token_rotation is not installed in this database (run: token-rotation install)", EXIT_OTHER
        )
    code = exit_code_for(sqlstate)
    detailed = (pg_errors.ObjectInUse, pg_errors.QueryCanceled, pg_errors.LockNotAvailable)
    return ToolError(describe(exc, with_detail=isinstance(exc, detailed)), code)
