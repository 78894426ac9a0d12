"""The command line's option types (durations, sizes) and the options of `rotate`, kept apart from the
commands in cli.py so that the wiring there reads at a glance."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

from token_rotation.reclaim import DEFAULT_SHARE
from token_rotation.units import parse_duration, parse_size

F = TypeVar("F", bound=Callable[..., Any])


class Duration(click.ParamType):
    """A duration option: 2, 1.5s, 200ms, 5min (seconds when no unit is given)."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float | int):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class TimeOfDay(click.ParamType):
    """A time of day: HH:MM (24-hour clock)."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text)
        if match is None:
            self.fail(f"{value!r} is not a time of day; pass HH:MM, e.g. 05:00", param, ctx)
        return f"{int(match.group(1)):02d}:{match.group(2)}"


class Columns(click.ParamType):
    """A list of column names: user_id, or id,created_at (names as PostgreSQL spells them, unquoted)."""

    name = "col[,col]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[str]:
        if isinstance(value, list):
            return value
        names = [name.strip() for name in str(value).split(",")]
        if not all(names):
            self.fail(f"{value!r} has an empty column name; pass e.g. user_id or id,created_at", param, ctx)
        return names


class Size(click.ParamType):
    """A size option: 100MB, 1GB, 4096 (bytes when no unit is given; units are powers of 1024)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


ROTATE_OPTIONS = [
    click.option(
        "--table",
        required=True,
        help="Table to rotate: [schema.]name; a partitioned table is one run over all its partitions.",
    ),
    click.option(
        "--column",
        default=None,
        help="The token column.  [default: token; on resume, the run's, like every option below that a "
        "run keeps]",
    ),
    click.option(
        "--key",
        type=Columns(),
        default=None,
        help="Walk the rows by these columns: NOT NULL, covered by a unique index, without the token column "
        "(e.g. --key user_id when the token is the primary key). A run keeps its key when resumed.  "
        "[default: the primary key, one column or several]",
    ),
    click.option(
        "--trust-table-owner",
        is_flag=True,
        help="Rotate a table whose UPDATE runs code of an owner this role does not trust (triggers, index "
        "expressions, CHECK constraints, generated columns, rules, a --format function of that owner), "
        "after reviewing that code: it runs with this role's rights. Refused without it; not kept with the "
        "run (each resume decides again).  [default: only the caller, a superuser or a member of the "
        "caller is trusted]",
    ),
    click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=None,
        help="Rows per batch, fixed.  [default for a new run: adaptive, batches of about 10 ms from 1000 "
        "rows, so that an application waiting on a row of a batch waits at most that; on resume, the run's]",
    ),
    click.option(
        "--format",
        "token_format",
        default=None,
        metavar="FORMAT",
        help="New token: uuid, hex:N, base64url:N (URL-safe, no padding), bytes:N (bytea), with N random "
        "bytes; function:schema.fn (a zero-argument function returning the column's type); "
        "null (clears an earlier run's --previous-column).  [default: uuid, for a uuid column]",
    ),
    click.option("--prefix", default=None, help="Text in front of a hex or base64url token, e.g. tk_."),
    click.option(
        "--previous-column",
        default=None,
        help="Column that receives each row's old token in the same UPDATE (a grace window for clients).",
    ),
    click.option(
        "--rotated-at-column", default=None, help="timestamptz column that receives the batch's time."
    ),
    click.option(
        "--where",
        default=None,
        metavar="SQL",
        help="Rotate only the rows that match this boolean SQL expression over the table's columns, e.g. "
        '"tenant_id = 42": one expression, no subquery, no volatile function; fixed when the run starts '
        "(a resume keeps it). An index on its columns makes the run cost in proportion to the subset.",
    ),
    click.option(
        "--older-than",
        type=Duration(),
        default=None,
        help="Rotate only the tokens older than this, e.g. 90d: rows whose --rotated-at-column is older "
        "(at the run's start) or NULL. Needs --rotated-at-column.",
    ),
    click.option(
        "--fill-null",
        is_flag=True,
        help="Give rows whose token is NULL a token too.  [default: a NULL token means no secret: the row "
        "keeps it and is not counted]",
    ),
    click.option(
        "--until",
        type=TimeOfDay(),
        default=None,
        metavar="HH:MM",
        help="Stop cleanly at this time of the server's day (its next occurrence), the checkpoint kept; run "
        "again to resume. For a nightly window: --until 05:00.",
    ),
    click.option(
        "--for",
        "window",
        type=Duration(),
        default=None,
        help="Stop cleanly after this long, e.g. 2h, the checkpoint kept; run again to resume.",
    ),
    click.option(
        "--max-batches",
        type=click.IntRange(min=1),
        default=None,
        help="Stop after this many batches (per worker); run again to resume.",
    ),
    click.option(
        "--sleep", type=Duration(), default=None, help="Pause between batches, e.g. 100ms.  [default: 0]"
    ),
    click.option(
        "--lock-timeout", type=Duration(), default=None, help="lock_timeout per batch.  [default: 1s]"
    ),
    click.option(
        "--lock-retries",
        type=click.IntRange(min=0),
        default=None,
        help="Lock timeouts in a row before giving up (each halves the batch).  [default: 5]",
    ),
    click.option(
        "--workers",
        type=click.IntRange(min=1, max=64),
        default=None,
        help="Workers: parallel sessions, one per key slice (a new run gets this many slices).  "
        "[default: 1; on resume, one per unfinished slice]",
    ),
    click.option(
        "--target-batch-time",
        type=Duration(),
        default=None,
        help="Adapt the batch size so a batch takes about this long, e.g. 200ms (from --batch-size rows, "
        "default 1000).  [default: 10ms unless --batch-size is given]",
    ),
    click.option(
        "--max-replication-lag",
        type=Size(),
        default=None,
        help="Wait while a replica lags more than this many bytes of WAL, e.g. 100MB.  (Every health limit: "
        "a signal the role cannot read, for want of pg_monitor, means wait, and the reason says so; "
        "token-rotation set changes them while the run goes on.)",
    ),
    click.option(
        "--max-replay-lag",
        type=Duration(),
        default=None,
        help="Wait while a replica's replay lags more than this, e.g. 10s (pg_stat_replication.replay_lag).",
    ),
    click.option(
        "--max-archive-queue",
        type=click.IntRange(min=0),
        default=None,
        metavar="FILES",
        help="Wait while more than this many WAL files wait to be archived (archive_command failing or "
        "slow).",
    ),
    click.option(
        "--pause-on-autovacuum/--no-pause-on-autovacuum",
        default=None,
        help="Wait while autovacuum works on the table (or a partition of it).  [default: no]",
    ),
    click.option(
        "--throttle-query",
        default=None,
        metavar="SQL",
        help="A query returning one boolean: true makes the run wait. Run by this command every second on a "
        "connection of its own, one statement, each poll in its own READ ONLY transaction with a 1 s "
        "statement_timeout, rolled back; an error or timeout also waits, and is reported. Checked once "
        "before the run starts.",
    ),
    click.option(
        "--synchronous-commit/--no-synchronous-commit",
        default=None,
        help="Wait for the WAL flush at each batch's COMMIT.  [default: no, as the procedure: a crash loses "
        "only the last batches together with their checkpoints, and the resume redoes them]",
    ),
    click.option(
        "--reclaim/--no-reclaim",
        default=True,
        show_default=True,
        help="VACUUM the table from a side session after each --reclaim-every of it, so that the next "
        "batches reuse the space the earlier ones freed (the table does not double).",
    ),
    click.option(
        "--reclaim-every",
        type=click.FloatRange(min=1, max=100),
        default=100 * DEFAULT_SHARE,
        show_default=True,
        metavar="PERCENT",
        help="Share of the table rotated between two VACUUMs of --reclaim.",
    ),
    click.option("--vacuum", is_flag=True, help="Run VACUUM (ANALYZE) on the table after a finished run."),
    click.option(
        "--dry-run",
        is_flag=True,
        help="Print the plan (rows, slices, batches, size against shared_buffers); writes nothing, "
        "locks no row.",
    ),
    click.option(
        "--sample",
        is_flag=True,
        help="With --dry-run: also run one batch, time it and roll it back, for an estimated duration "
        "(it takes row locks on that batch while it runs).",
    ),
    click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print JSON lines (started, progress, finished|interrupted|error, summary).",
    ),
    click.option(
        "--progress-interval",
        type=Duration(),
        default=None,
        help="Seconds between progress lines when not on a terminal.  [default: 5s, 1s with --json]",
    ),
]


def rotate_options(command: F) -> F:
    """Decorates `rotate` with ROTATE_OPTIONS, in the order --help lists them."""
    for option in reversed(ROTATE_OPTIONS):
        command = option(command)
    return command


def rotate_params() -> list[click.Option]:
    """The click.Option objects of ROTATE_OPTIONS, in the order --help lists them: what the other ways in
    (`schedule`, Django's `rotate_tokens` and `RotateTokens`) derive their own options from."""

    def command(**_: Any) -> None:
        pass

    rotate_options(command)
    params: list[click.Option] = command.__click_params__  # type: ignore[attr-defined]
    return list(reversed(params))


AS_SQL = click.option(
    "--sql",
    "as_sql",
    is_flag=True,
    help="Connect to nothing: write the SQL script to stdout instead (Alembic's offline mode), "
    "for psql -v ON_ERROR_STOP=1 -f on a host without Python.",
)


UNSETTABLE = ("target-batch-time", "max-replication-lag", "max-replay-lag", "max-archive-queue")

SET_OPTIONS = [
    click.option("--table", required=True, help="Table whose open run to retune: [schema.]name."),
    click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=None,
        help="Rows per batch, fixed (ends adaptive batches unless --target-batch-time is given too).",
    ),
    click.option("--sleep", type=Duration(), default=None, help="Pause between batches, e.g. 20ms."),
    click.option("--lock-timeout", type=Duration(), default=None, help="lock_timeout per batch."),
    click.option("--lock-retries", type=click.IntRange(min=0), default=None, help="Lock timeouts in a row."),
    click.option(
        "--target-batch-time",
        type=Duration(),
        default=None,
        help="Adapt the batch size so a batch takes about this long, e.g. 5ms.",
    ),
    click.option("--max-replication-lag", type=Size(), default=None, help="Replica lag in bytes, e.g. 64MB."),
    click.option("--max-replay-lag", type=Duration(), default=None, help="Replica replay lag, e.g. 10s."),
    click.option(
        "--max-archive-queue", type=click.IntRange(min=0), default=None, metavar="FILES", help="WAL files."
    ),
    click.option("--pause-on-autovacuum/--no-pause-on-autovacuum", default=None, help="Wait for autovacuum."),
    click.option("--synchronous-commit/--no-synchronous-commit", default=None, help="Wait for WAL flushes."),
    click.option(
        "--unset",
        type=click.Choice(UNSETTABLE),
        multiple=True,
        help="Stop watching this limit (or, for target-batch-time, go back to fixed batches); repeatable.",
    ),
]


def set_options(command: F) -> F:
    """Decorates `set` with SET_OPTIONS."""
    for option in reversed(SET_OPTIONS):
        command = option(command)
    return command
