"""manage.py rotate_tokens app_label.Model [--field token]: `token-rotation rotate` for a Django model.

The table, token column and key come from the model's _meta, the database from the Django settings
(--database alias); the rest is the CLI's runner (token_rotation.runner): the same options, live bar, ETA,
--json lines, exit codes (0 done, 1 other error, 2 bad input, 3 another run holds the table, 130
interrupted) and Ctrl-C behaviour (committed batches kept; the same command resumes).
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from token_rotation import connection, render, runner
from token_rotation.django import options as model_options
from token_rotation.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, ToolError


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
            "--rotated-at-field",
            help="A DateTimeField that each batch sets to its time (needed by --older-than).",
        )
        parser.add_argument("--database", default="default", help="Django database alias (default: default).")
        model_options.add_arguments(parser)  # the options of token-rotation rotate a model takes
        parser.add_argument(
            "--schedule",
            metavar="CRON",
            help="Do not rotate now: make a pg_cron job that rotates with these options at these times, "
            "e.g. '0 1 * * *' (token-rotation schedule; needs pg_cron in the server).",
        )
        parser.add_argument(
            "--unschedule", action="store_true", help="Remove the model's schedule (its pg_cron job)."
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
            request = runner.Request.from_options(
                {
                    **options,
                    "table": field.table,
                    "column": field.column,
                    "key": field.key,
                    "rotated_at_column": rotated_at,
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
    from token_rotation import schedule as schedules
    from token_rotation import server_api

    with connection.connect_for_user(db.dsn, connection.APPLICATION_NAME) as conn:
        server_api.check_installed(conn)
        oid, qualified = server_api.resolve_table(conn, table)
        if options["unschedule"]:
            if not schedules.unschedule(conn, oid):
                raise ToolError(f"{qualified} has no schedule of yours", EXIT_BAD_INPUT)
            return f"unscheduled {qualified}"
        given = {**vars(request), "token_format": request.token_format}
        jobid = schedules.schedule(conn, oid, options["schedule"], given)
    return f"scheduled job {jobid}: {qualified} at '{options['schedule']}'"


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
