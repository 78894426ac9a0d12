"""manage.py rotate_tokens app_label.Model [--field token]: `token-rotation rotate` for a Django model.

The table, token column and key come from the model's _meta, the database from the Django settings
(--database alias); the rest is the CLI's runner (token_rotation.runner): the same options, live bar, ETA,
--json lines, exit codes (0 done, 1 other error, 2 bad input, 3 another run holds the table, 130
interrupted) and Ctrl-C behaviour (committed batches kept; the same command resumes).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import click
from django.core.management.base import BaseCommand, CommandParser

from token_rotation import connection, render, runner
from token_rotation.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, ToolError
from token_rotation.options import TimeOfDay
from token_rotation.reclaim import DEFAULT_SHARE
from token_rotation.units import parse_duration, parse_size


def _typed(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


class Command(BaseCommand):
    help = (
        "Start or resume the rotation of a model's UUIDField token, with live progress and ETA "
        "(token-rotation rotate for a Django model)."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="The model: app_label.Model, e.g. myapp.Ticket.")
        parser.add_argument(
            "--field",
            default="token",
            help="The token field: a UUIDField, or a text or binary field with --format (default: token).",
        )
        parser.add_argument(
            "--format",
            dest="token_format",
            help="New token: uuid, hex:N, base64url:N (text fields), bytes:N (BinaryField), "
            "function:schema.fn "
            "(default: uuid for a UUIDField).",
        )
        parser.add_argument("--prefix", help="Text in front of a hex or base64url token, e.g. ak_.")
        parser.add_argument("--database", default="default", help="Django database alias (default: default).")
        parser.add_argument(
            "--batch-size",
            type=_positive,
            help="Rows per batch, fixed (default: batches of about 10 ms, as token-rotation rotate).",
        )
        parser.add_argument(
            "--reclaim",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="VACUUM the table from a side session after each --reclaim-every of it, so that the table "
            "does not double (default: on, as token-rotation rotate).",
        )
        parser.add_argument(
            "--reclaim-every",
            type=float,
            default=100 * DEFAULT_SHARE,
            metavar="PERCENT",
            help=f"Share of the table between two VACUUMs of --reclaim (default: {100 * DEFAULT_SHARE:g}).",
        )
        parser.add_argument(
            "--max-batches",
            type=_positive,
            help="Stop after this many batches (per worker); run again to resume.",
        )
        parser.add_argument("--sleep", type=_typed(parse_duration), help="Pause between batches, e.g. 100ms.")
        parser.add_argument(
            "--lock-timeout", type=_typed(parse_duration), help="lock_timeout per batch (1s)."
        )
        parser.add_argument("--lock-retries", type=int, help="Lock timeouts in a row before giving up (5).")
        parser.add_argument(
            "--workers",
            type=_positive,
            help="Parallel sessions, one per key slice (default: 1; on resume, one per unfinished slice).",
        )
        parser.add_argument(
            "--target-batch-time",
            type=_typed(parse_duration),
            help="Adapt the batch size so a batch takes about this long, e.g. 200ms.",
        )
        parser.add_argument(
            "--max-replication-lag",
            type=_typed(parse_size),
            help="Wait while a replica lags more, e.g. 100MB.",
        )
        parser.add_argument(
            "--max-replay-lag",
            type=_typed(parse_duration),
            help="Wait while a replica's replay lags more, e.g. 10s.",
        )
        parser.add_argument(
            "--max-archive-queue",
            type=int,
            help="Wait while more WAL files than this wait to be archived.",
        )
        parser.add_argument(
            "--pause-on-autovacuum",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Wait while autovacuum works on the table (default: no).",
        )
        parser.add_argument(
            "--throttle-query",
            help="A query returning one boolean; true makes the run wait (run every second, 1 s timeout).",
        )
        parser.add_argument(
            "--synchronous-commit",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Wait for the WAL flush at each batch's COMMIT (default: no).",
        )
        parser.add_argument(
            "--trust-table-owner",
            action="store_true",
            help="Rotate a table whose UPDATE runs code (triggers, ...) of an owner this role does not "
            "trust, after reviewing it (refused otherwise; asked again on every resume).",
        )
        parser.add_argument(
            "--where",
            help="Rotate only the rows that match this SQL expression over the table's columns, e.g. "
            '"tenant_id = 42" (column names, not field names; fixed when the run starts).',
        )
        parser.add_argument(
            "--older-than",
            type=_typed(parse_duration),
            help="Rotate only the tokens older than this, e.g. 90d, by --rotated-at-field (older or NULL).",
        )
        parser.add_argument(
            "--rotated-at-field",
            help="A DateTimeField that each batch sets to its time (needed by --older-than).",
        )
        parser.add_argument(
            "--fill-null",
            action="store_true",
            help="Give rows whose token is NULL one too (default: a NULL token means no secret, kept).",
        )
        parser.add_argument(
            "--until", help="Stop cleanly at this time of the server's day, HH:MM; run again to resume."
        )
        parser.add_argument(
            "--for",
            dest="window",
            type=_typed(parse_duration),
            help="Stop cleanly after this long, e.g. 2h; run again to resume.",
        )
        parser.add_argument(
            "--schedule",
            metavar="CRON",
            help="Do not rotate now: make a pg_cron job that rotates with these options at these times, "
            "e.g. '0 1 * * *' (token-rotation schedule; needs pg_cron in the server).",
        )
        parser.add_argument(
            "--unschedule", action="store_true", help="Remove the model's schedule (its pg_cron job)."
        )
        parser.add_argument("--vacuum", action="store_true", help="VACUUM (ANALYZE) the table after the run.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Print the plan and estimated duration; change nothing."
        )
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="Print JSON lines (as token-rotation rotate)."
        )
        parser.add_argument(
            "--progress-interval",
            type=_typed(parse_duration),
            help="Seconds between progress lines when not on a terminal (5s; 1s with --json).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from token_rotation.django import database

        try:
            model = database.get_model(options["model"])
            field = database.token_field(model, options["field"], options["token_format"])
            db = database.target(options["database"])
            rotated_at = options["rotated_at_field"] and database.field_column(
                model, options["rotated_at_field"]
            )
            until = options["until"] and time_of_day(options["until"])
            request = runner.Request.from_options(
                {
                    **options,
                    "table": field.table,
                    "column": field.column,
                    "rotated_at_column": rotated_at,
                    "until": until,
                }
            )
            if options["schedule"] or options["unschedule"]:
                self.stdout.write(scheduled(db, field.table, request, options))
                return
            renderer = render.renderer_for(options["as_json"], options["progress_interval"])
            code = runner.rotate(
                db,
                connection.APPLICATION_NAME,
                request,
                renderer,
                resume=resume_command(options, field.label),
            )
        except ToolError as err:
            err.show()
            code = err.exit_code
        except KeyboardInterrupt:
            ToolError("interrupted", EXIT_INTERRUPTED).show()
            code = EXIT_INTERRUPTED
        if code != EXIT_OK:
            sys.stdout.flush()
            sys.exit(code)


def scheduled(db: connection.Target, table: str, request: runner.Request, options: dict[str, Any]) -> str:
    """--schedule, --unschedule: the model's pg_cron job, as `token-rotation schedule` has it."""
    from token_rotation import progress
    from token_rotation import schedule as schedules

    with connection.connect_for_user(db.dsn, connection.APPLICATION_NAME) as conn:
        progress.check_installed(conn)
        oid, qualified = progress.resolve_table(conn, table)
        if options["unschedule"]:
            if not schedules.unschedule(conn, oid):
                raise ToolError(f"{qualified} has no schedule of yours", EXIT_BAD_INPUT)
            return f"unscheduled {qualified}"
        given = {**vars(request), "token_format": request.token_format}
        jobid = schedules.schedule(conn, oid, options["schedule"], given)
    return f"scheduled job {jobid}: {qualified} at '{options['schedule']}'"


def time_of_day(text: str) -> str:
    """--until's HH:MM, as the CLI reads it."""
    try:
        return str(TimeOfDay().convert(text, None, None))
    except click.BadParameter as exc:
        raise ToolError(f"--until: {exc.message}", EXIT_BAD_INPUT) from None


def resume_command(options: dict[str, Any], label: str) -> str:
    """The command that resumes the run, as typed in the Django project."""
    parts = ["python manage.py rotate_tokens", label]
    if options["field"] != "token":
        parts += ["--field", options["field"]]
    if options["database"] != "default":
        parts += ["--database", options["database"]]
    if options["token_format"]:
        parts += ["--format", options["token_format"]]
    if options["batch_size"] is not None:
        parts += ["--batch-size", str(options["batch_size"])]
    if options["workers"]:
        parts += ["--workers", str(options["workers"])]
    return " ".join(parts)
