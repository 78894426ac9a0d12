"""The `token-rotation` command line: click wiring only. Each command resolves the database and hands over to
the module that does the job: runner.py (rotate), render.py (all drawing), server_api.py (reading the server),
migrate.py and seed.py; rotate's options are declared in options.py.

Exit codes (errors.EXIT_CODES): 0 done, 1 any other error, 2 bad input, 3 another run holds the table,
130 interrupted. PostgreSQL errors are mapped by SQLSTATE to one line (the server's message and HINT, with
CLI flags for the procedure's parameter names) and an exit code; no traceback, no token, no password is ever
printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import psycopg

from token_rotation import citus, connection, embedded, options, render, runner, server_api
from token_rotation import schedule as schedules
from token_rotation.errors import (
    EXIT_BAD_INPUT,
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_OTHER,
    ToolError,
    from_pg,
    redact,
)
from token_rotation.units import format_count, format_duration

__all__ = ["cli", "main"]


class Cli(click.Group):
    """A click group that turns PostgreSQL errors and Ctrl-C into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except psycopg.Error as exc:
            raise from_pg(exc) from None
        except KeyboardInterrupt:
            raise ToolError("interrupted", EXIT_INTERRUPTED) from None
        except OSError as exc:
            raise ToolError(redact(str(exc)), EXIT_OTHER) from None


EPILOG = "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.option(
    "--dsn",
    envvar="DATABASE_URL",
    default=None,
    metavar="DSN",
    help="Database to use (libpq URL or key=value). Default: DATABASE_URL, else the PG* variables, "
    "else the embedded server in ./.pgdata.",
)
@click.option(
    "--application-name",
    envvar="TOKEN_ROTATION_APPLICATION_NAME",
    default=connection.APPLICATION_NAME,
    show_default=True,
    help="application_name of the tool's sessions, as pg_stat_activity shows them.",
)
@click.version_option(package_name="token-rotation")
@click.pass_context
def cli(ctx: click.Context, dsn: str | None, application_name: str) -> None:
    """Rotate the token of every row of a PostgreSQL table: online, resumable, exactly once."""
    ctx.obj = {"dsn": dsn, "application_name": application_name}


def target(ctx: click.Context) -> connection.Target:
    """The database chosen by --dsn / DATABASE_URL / PG* / the embedded server (said on stderr)."""
    try:
        db = connection.resolve(ctx.obj["dsn"])
    except ToolError:  # no database, and no embedded server installed: says how to get one
        raise
    except Exception as exc:  # the embedded server could not start
        raise ToolError(f"could not start the embedded PostgreSQL: {redact(str(exc))}") from None
    notice = connection.embedded_notice(db)
    if notice:
        click.echo(notice, err=True)
    return db


@contextmanager
def session(ctx: click.Context, suffix: str = "") -> Iterator[psycopg.Connection]:
    """An autocommit connection to the chosen database, with the tool installed."""
    db = target(ctx)
    with connection.connect_for_user(db.dsn, ctx.obj["application_name"] + suffix) as conn:
        server_api.check_installed(conn)
        yield conn


@cli.command()
@options.AS_SQL
@click.pass_context
def install(ctx: click.Context, as_sql: bool) -> None:
    """Install or upgrade the token_rotation schema (Alembic migrations; idempotent)."""
    from token_rotation import migrate

    if as_sql:
        migrate.upgrade_sql(click.get_text_stream("stdout"))
        return
    db = target(ctx)
    nodes = cluster_nodes(db, ctx.obj["application_name"], "install")
    migrate.upgrade(db.dsn)
    for host, port in nodes:
        migrate.upgrade(citus.node_dsn(db.dsn, host, port))
    click.echo(f"installed token_rotation in {db.masked()}{nodes_text(nodes)}")


@cli.command()
@options.AS_SQL
@click.pass_context
def uninstall(ctx: click.Context, as_sql: bool) -> None:
    """Remove everything the tool installed (idempotent)."""
    from token_rotation import migrate

    if as_sql:
        migrate.downgrade_sql(click.get_text_stream("stdout"))
        return
    db = target(ctx)
    nodes = cluster_nodes(db, ctx.obj["application_name"], "uninstall")
    for host, port in nodes:  # workers first: one with a rotation going on refuses before anything goes
        migrate.downgrade(citus.node_dsn(db.dsn, host, port))
    migrate.downgrade(db.dsn)
    click.echo(f"removed token_rotation from {db.masked()}{nodes_text(nodes)}")


def cluster_nodes(db: connection.Target, app: str, action: str) -> list[tuple[str, int]]:
    """The worker nodes that install and uninstall cover with the coordinator's (none without Citus); a
    Citus worker itself is refused: the coordinator installs on every node."""
    with connection.connect_for_user(db.dsn, app) as conn:
        kind = citus.node_kind(conn)
        if kind == "worker":
            raise ToolError(
                f"this server is a Citus worker node: {action} from the coordinator, which covers every node",
                EXIT_BAD_INPUT,
            )
        return citus.workers(conn) if kind == "coordinator" else []


def nodes_text(nodes: list[tuple[str, int]]) -> str:
    """ " and its 2 Citus worker node(s) (host:port, ...)", or nothing."""
    if not nodes:
        return ""
    return f" and its {len(nodes)} Citus worker node(s) ({', '.join(f'{h}:{p}' for h, p in nodes)})"


@cli.command()
@click.option(
    "--rows", type=click.IntRange(min=0), default=1_000_000, show_default=True, help="Rows to insert."
)
@click.option(
    "--table", default="tickets", show_default=True, help="Demo table to (re)create: [schema.]name."
)
@click.option(
    "--batch", type=click.IntRange(min=1), default=100_000, show_default=True, help="Rows per INSERT."
)
@click.pass_context
def seed(ctx: click.Context, rows: int, table: str, batch: int) -> None:
    """Create the demo table (like the original's Ticket model) and fill it with ROWS rows."""
    from token_rotation import seed as seeding

    db = target(ctx)
    schema, _, name = table.rpartition(".")
    bar = render.SeedBar(batch)
    try:
        result = seeding.seed(db.dsn, rows, name, batch, bar.update, schema=schema or None)
    except seeding.SeedError as exc:
        raise ToolError(str(exc), EXIT_BAD_INPUT) from None
    finally:
        bar.close()
    click.echo(
        f"seeded {format_count(result.rows)} rows into {result.table} in {format_duration(result.seconds)} "
        f"({format_count(result.rows_per_second)} rows/s) in {db.masked()}"
    )


@cli.command()
@options.rotate_options
@click.pass_context
def rotate(ctx: click.Context, as_json: bool, progress_interval: float | None, **given: Any) -> None:
    """Start or resume the rotation of a table, with live progress and ETA."""
    db = target(ctx)
    request = runner.Request.from_options(given)
    if request.sample and not request.dry_run:
        raise ToolError("--sample goes with --dry-run: it times one batch of the plan", EXIT_BAD_INPUT)
    renderer = render.renderer_for(as_json, progress_interval)
    ctx.exit(runner.rotate(db, ctx.obj["application_name"], request, renderer))


@cli.command()
@click.option("--table", default=None, help="Only the runs of this table.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "prometheus"]),
    default=None,
    help="table (default), json (one object per run) or prometheus (text exposition, for a textfile "
    "collector or a push).",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--watch", is_flag=True, help="Redraw the table every second until Ctrl-C (which exits 0).")
@click.pass_context
def status(
    ctx: click.Context, table: str | None, output_format: str | None, as_json: bool, watch: bool
) -> None:
    """All runs with state and progress, and the ETA of open ones (whoever started them)."""
    chosen = render.status_format(output_format, as_json, watch)
    with session(ctx) as conn:
        oid = server_api.resolve_table(conn, table)[0] if table else None
        if watch:
            render.watch(lambda: server_api.runs(conn, oid))
            return
        runs = server_api.runs(conn, oid)
        jobs = [j for j in schedules.schedules(conn) if oid is None or j["table_oid"] == oid]
    render.status(runs, chosen, table, jobs)


@cli.command()
@click.option(
    "--run", "run_id", type=int, default=None, help="Run to check. Default: the newest run (of --table)."
)
@click.option("--table", default=None, help="Check the newest run of this table.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per check.")
@click.pass_context
def verify(ctx: click.Context, run_id: int | None, table: str | None, as_json: bool) -> None:
    """Check from the progress log that a run covered its key range once and tokens are unique."""
    with session(ctx) as conn:
        if run_id is None:
            run_id = server_api.newest_run(conn, table)
        checks = server_api.verify(conn, run_id)
    render.verify(run_id, checks, as_json)
    failed = [c for c in checks if not c["ok"]]
    if failed:
        raise ToolError(f"run {run_id}: {len(failed)} of {len(checks)} checks failed", EXIT_OTHER)


def _control(ctx: click.Context, table: str, function: str, done: str) -> None:
    with session(ctx) as conn:
        run_id, qualified = server_api.control(conn, table, function)
    click.echo(f"{done} run {run_id} of {qualified}")


@cli.command()
@click.option("--table", required=True, help="Table whose open run to pause: [schema.]name.")
@click.pass_context
def pause(ctx: click.Context, table: str) -> None:
    """Pause a table's open run after its current batch (from any terminal)."""
    _control(ctx, table, "pause", "paused")


@cli.command()
@click.option("--table", required=True, help="Table whose paused run to unpause: [schema.]name.")
@click.pass_context
def unpause(ctx: click.Context, table: str) -> None:
    """Lift a pause: the run's waiting workers go on (to continue a stopped run: rotate)."""
    _control(ctx, table, "unpause", "unpaused")


@cli.command()
@click.option("--table", required=True, help="Table whose open run to cancel: [schema.]name.")
@click.pass_context
def cancel(ctx: click.Context, table: str) -> None:
    """Cancel a table's open run: workers stop after their batch; the next rotate starts anew."""
    _control(ctx, table, "cancel", "cancelled")


@cli.command(name="set")
@options.set_options
@click.pass_context
def set_(ctx: click.Context, table: str, unset: tuple[str, ...], **given: Any) -> None:
    """Retune a table's running run from any terminal: its workers take the new values at their next batch."""
    with session(ctx) as conn:
        click.echo(server_api.retune(conn, table, given, [name.replace("-", "_") for name in unset]))


@cli.command()
@click.option("--table", required=True, help="Table whose open run to hold: [schema.]name.")
@click.option("--reason", default=None, help="The workers' reason to wait.  [default: lift the hold]")
@click.option("--for", "seconds", type=options.Duration(), default=3600.0, help="How long.  [default: 1h]")
@click.pass_context
def hold(ctx: click.Context, table: str, reason: str | None, seconds: float) -> None:
    """Make a run's workers wait with a reason for a while (a busy hour, a backup); no --reason lifts it."""
    with session(ctx) as conn:
        run_id, qualified = server_api.hold(conn, table, reason, seconds)
    lifted = f"lifted the hold of run {run_id} of {qualified}"
    click.echo(
        f"held run {run_id} of {qualified} for {format_duration(seconds)}: {reason}" if reason else lifted
    )


@cli.command(name="schedule")
@click.option("--table", default=None, help="Table whose rotation to schedule: [schema.]name.")
@click.option(
    "--cron",
    default=None,
    metavar="'MIN HOUR DAY MONTH WEEKDAY'",
    help="When the job fires, in cron's syntax (pg_cron): '0 1 * * *' is every night at 01:00 (the server's "
    "time zone, cron.timezone).",
)
@click.option(
    "--list", "as_list", is_flag=True, help="Show the schedules instead: last firing, run, oldest token."
)
@click.option("--json", "as_json", is_flag=True, help="With --list: one JSON object per schedule.")
@click.pass_context
def schedule_(
    ctx: click.Context, table: str | None, cron: str | None, as_list: bool, as_json: bool, **given: Any
) -> None:
    """Rotate a table on a schedule (a pg_cron job that CALLs the procedure as you, with these options):
    each firing resumes an unfinished run or starts a new one over what is due, e.g. --older-than 90d
    --rotated-at-column rotated_at --for 4h. Needs pg_cron in the server (the error says how)."""
    with session(ctx) as conn:
        if as_list:
            jobs = schedules.schedules(conn)
            for job in jobs:
                click.echo(json.dumps(job, default=str) if as_json else render.schedule_line(job))
            if not jobs and not as_json:
                click.echo("no schedules: token-rotation schedule --table T --cron '0 1 * * *'")
            return
        if not cron:
            raise ToolError("schedule needs --cron, e.g. --cron '0 1 * * *' (or --list)", EXIT_BAD_INPUT)
        oid, qualified = server_api.resolve_table(conn, schedules.require_table(table))
        jobid = schedules.schedule(conn, oid, cron, given)
    click.echo(f"scheduled job {jobid}: {qualified} at '{cron}' (token-rotation schedule --list shows it)")


schedule_.params.extend(schedules.job_params())


@cli.command()
@click.option("--table", required=True, help="Table whose schedule to remove: [schema.]name.")
@click.pass_context
def unschedule(ctx: click.Context, table: str) -> None:
    """Remove a table's schedule (its pg_cron job); a run it started stays as it is."""
    with session(ctx) as conn:
        oid, qualified = server_api.resolve_table(conn, table)
        if not schedules.unschedule(conn, oid):
            raise ToolError(
                f"{qualified} has no schedule of yours (token-rotation schedule --list)", EXIT_BAD_INPUT
            )
    click.echo(f"unscheduled {qualified}")


@cli.command(hidden=True, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def resume() -> None:
    """Not a command: says which two commands `resume` could mean."""
    raise ToolError(
        "there is no `resume`: `token-rotation unpause --table T` lifts a pause, "
        "`token-rotation rotate --table T` continues a run",
        EXIT_BAD_INPUT,
    )


@cli.group(name="server")
def server_group() -> None:
    """Manage the embedded PostgreSQL in ./.pgdata (used when no database is given)."""


@server_group.command()
def start() -> None:
    """Start the embedded server (initialising ./.pgdata the first time)."""
    click.echo(embedded.start())


@server_group.command()
def stop() -> None:
    """Stop the embedded server."""
    click.echo("stopped" if embedded.stop() else "not running")


@server_group.command()
def url() -> None:
    """Print the embedded server's URL (non-zero exit if it is not running)."""
    found = embedded.running_url()
    if found is None:
        raise ToolError("the embedded server is not running: token-rotation server start")
    click.echo(found)


def main() -> None:
    cli.main(prog_name="token-rotation")
