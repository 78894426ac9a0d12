"""manage.py rotation_status [app_label.Model]: `token-rotation status` in a Django project: every run with
its state, progress and ETA (of one model's table when given), from the --database alias."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from psycopg import sql

from token_rotation import connection, render, server_api
from token_rotation.errors import ToolError, from_pg


class Command(BaseCommand):
    help = (
        "All token rotation runs with state and progress, and the ETA of open ones (token-rotation status)."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", nargs="?", help="Only the runs of this model's table: app_label.Model.")
        parser.add_argument("--database", default="default", help="Django database alias (default: default).")
        parser.add_argument(
            "--format",
            dest="output_format",
            choices=["table", "json", "prometheus"],
            default=None,
            help="table (default), json (one object per run) or prometheus (text exposition).",
        )
        parser.add_argument("--json", dest="as_json", action="store_true", help="Same as --format json.")

    def handle(self, *args: Any, **options: Any) -> None:
        import psycopg

        from token_rotation.django import database

        try:
            chosen = render.status_format(options["output_format"], options["as_json"], watch=False)
            table = database.get_model(options["model"])._meta.db_table if options["model"] else None
            db = database.target(options["database"])
            with connection.connect_for_user(db.dsn, f"{connection.APPLICATION_NAME}/status") as conn:
                server_api.check_installed(conn)
                oid = server_api.resolve_table(conn, sql.Identifier(table).as_string())[0] if table else None
                runs = server_api.runs(conn, oid)
            render.status(runs, chosen, table)
        except psycopg.Error as exc:
            err = from_pg(exc)
            err.show()
            sys.exit(err.exit_code)
        except ToolError as err:
            err.show()
            sys.exit(err.exit_code)
