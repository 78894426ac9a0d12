"""The `token-rotation` command line (click). Thin: each command resolves the database, then calls SQL."""

from __future__ import annotations

import sys

import click
import psycopg

from token_rotation import connection, migrate, server

EXIT_OK = 0
EXIT_OTHER = 1
EXIT_BAD_INPUT = 2
EXIT_BUSY = 3
EXIT_INTERRUPTED = 130


class ToolError(click.ClickException):
    """An error for users: one line of what went wrong and what to do, and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_OTHER) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--dsn",
    envvar="DATABASE_URL",
    default=None,
    metavar="DSN",
    help="Database to use (libpq URL or key=value). Default: DATABASE_URL, else the PG* variables, "
    "else the embedded server in ./.pgdata.",
)
@click.pass_context
def cli(ctx: click.Context, dsn: str | None) -> None:
    """Rotate the uuid token of every row of a PostgreSQL table: online, resumable, exactly once."""
    ctx.obj = {"dsn": dsn}


def target(ctx: click.Context) -> connection.Target:
    try:
        return connection.resolve(ctx.obj["dsn"])
    except Exception as exc:  # the embedded server could not start
        raise ToolError(f"could not start the embedded PostgreSQL: {exc}") from None


@cli.command()
@click.pass_context
def install(ctx: click.Context) -> None:
    """Install or upgrade the token_rotation schema (Alembic migrations; idempotent)."""
    db = target(ctx)
    migrate.upgrade(db.dsn)
    click.echo(f"installed token_rotation in {db.masked()}")


@cli.command()
@click.pass_context
def uninstall(ctx: click.Context) -> None:
    """Remove everything the tool installed (idempotent)."""
    db = target(ctx)
    migrate.downgrade(db.dsn)
    click.echo(f"removed token_rotation from {db.masked()}")


@cli.group(name="server")
def server_group() -> None:
    """Manage the embedded PostgreSQL in ./.pgdata (used when no database is given)."""


@server_group.command()
def start() -> None:
    """Start the embedded server (initialising ./.pgdata the first time)."""
    click.echo(server.start())


@server_group.command()
def stop() -> None:
    """Stop the embedded server."""
    click.echo("stopped" if server.stop() else "not running")


@server_group.command()
def url() -> None:
    """Print the embedded server's URL (non-zero exit if it is not running)."""
    found = server.running_url()
    if found is None:
        raise ToolError("the embedded server is not running: token-rotation server start")
    click.echo(found)


def main() -> None:
    try:
        cli.main(standalone_mode=True)
    except psycopg.OperationalError as exc:
        click.echo(f"error: cannot connect: {str(exc).splitlines()[0]}", err=True)
        sys.exit(EXIT_OTHER)
