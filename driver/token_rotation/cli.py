"""The `token-rotation` command line (click). Thin: each command resolves the database, then calls SQL.

Exit codes (errors.EXIT_CODES): 0 done, 1 any other error, 2 bad input, 3 another run holds the table,
130 interrupted. PostgreSQL errors are mapped by SQLSTATE to one line (the server's message and HINT) and an
exit code; no traceback, no token, no password is ever printed.
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import click
import psycopg
from psycopg import sql

from token_rotation import connection, eta, progress, render, server
from token_rotation.errors import (
    EXIT_BAD_INPUT,
    EXIT_BUSY,
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OTHER,
    ToolError,
    describe,
    from_pg,
    redact,
)
from token_rotation.rotation import Options, Rotation
from token_rotation.units import format_count, format_duration, format_size, parse_duration, parse_size

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_BUSY",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_OTHER",
    "ToolError",
    "cli",
    "main",
]

POLL_SECONDS = 0.5  # the progress view is read about twice a second


class Cli(click.Group):
    """A click group that turns PostgreSQL errors and Ctrl-C into one line and an exit code, and imports
    the heavy commands (bench: Alembic, matplotlib) only when they are used, so that `rotate` starts fast
    and small."""

    lazy = {"bench": ("token_rotation.bench.compare", "bench")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, attribute = self.lazy[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except psycopg.Error as exc:
            raise from_pg(exc) from None
        except KeyboardInterrupt:
            raise ToolError("interrupted", EXIT_INTERRUPTED) from None
        except OSError as exc:
            raise ToolError(redact(str(exc)), EXIT_OTHER) from None


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
    """Rotate the uuid token of every row of a PostgreSQL table: online, resumable, exactly once."""
    ctx.obj = {"dsn": dsn, "application_name": application_name}


def target(ctx: click.Context) -> connection.Target:
    """The database chosen by --dsn / DATABASE_URL / PG* / the embedded server."""
    try:
        return connection.resolve(ctx.obj["dsn"])
    except Exception as exc:  # the embedded server could not start
        raise ToolError(f"could not start the embedded PostgreSQL: {redact(str(exc))}") from None


@contextmanager
def session(ctx: click.Context, suffix: str = "") -> Iterator[psycopg.Connection]:
    """An autocommit connection to the chosen database, with the tool installed."""
    db = target(ctx)
    with connect(db.dsn, ctx.obj["application_name"] + suffix) as conn:
        progress.check_installed(conn)
        yield conn


def connect(dsn: str, application_name: str) -> psycopg.Connection:
    """connection.connect, with a bad DSN reported as bad input (without echoing the DSN)."""
    try:
        return connection.connect(dsn, application_name=application_name)
    except psycopg.ProgrammingError as exc:
        if exc.sqlstate is None:
            reason = str(exc).split(":")[0].strip() or "it does not parse"
            raise ToolError(
                f"invalid DSN ({reason}): pass a libpq URL or key=value string", EXIT_BAD_INPUT
            ) from None
        raise


# ---------------------------------------------------------------------------------------------- install


@cli.command()
@click.pass_context
def install(ctx: click.Context) -> None:
    """Install or upgrade the token_rotation schema (Alembic migrations; idempotent)."""
    from token_rotation import migrate

    db = target(ctx)
    migrate.upgrade(db.dsn)
    click.echo(f"installed token_rotation in {db.masked()}")


@cli.command()
@click.pass_context
def uninstall(ctx: click.Context) -> None:
    """Remove everything the tool installed (idempotent)."""
    from token_rotation import migrate

    db = target(ctx)
    migrate.downgrade(db.dsn)
    click.echo(f"removed token_rotation from {db.masked()}")


# ------------------------------------------------------------------------------------------------- seed


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
    tty = sys.stdout.isatty()
    bar: Any = None
    task: Any = None

    def on_progress(done: int, total: int) -> None:
        nonlocal bar, task
        if tty:
            if bar is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

                bar = Progress(
                    "seeding", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), auto_refresh=False
                )
                bar.start()
                task = bar.add_task("seed", total=max(total, 1))
            bar.update(task, completed=done)
            bar.refresh()
        elif done == total or done % max(batch * 10, 1) < batch:
            click.echo(f"seeded {format_count(done)}/{format_count(total)} rows")

    try:
        result = seeding.seed(db.dsn, rows, name, batch, on_progress, schema=schema or None)
    except seeding.SeedError as exc:
        raise ToolError(str(exc), EXIT_BAD_INPUT) from None
    finally:
        if bar is not None:
            bar.stop()
    click.echo(
        f"seeded {format_count(result.rows)} rows into {result.table} in {format_duration(result.seconds)} "
        f"({format_count(result.rows_per_second)} rows/s) in {db.masked()}"
    )


# ----------------------------------------------------------------------------------------------- rotate


@cli.command()
@click.option("--table", default="tickets", show_default=True, help="Table to rotate: [schema.]name.")
@click.option("--column", default="token", show_default=True, help="The uuid token column.")
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=3000, show_default=True, help="Rows per batch."
)
@click.option(
    "--max-batches",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many batches (per worker); run again to resume.",
)
@click.option(
    "--sleep", type=Duration(), default=None, help="Pause between batches, e.g. 100ms.  [default: 0]"
)
@click.option("--lock-timeout", type=Duration(), default=None, help="lock_timeout per batch.  [default: 1s]")
@click.option(
    "--lock-retries",
    type=click.IntRange(min=0),
    default=None,
    help="Lock timeouts in a row before giving up (each halves the batch).  [default: 5]",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=64),
    default=None,
    help="Parallel sessions on disjoint key slices.  [default: 1; on resume, one per unfinished slice]",
)
@click.option(
    "--target-batch-time",
    type=Duration(),
    default=None,
    help="Adapt the batch size so a batch takes about this long, e.g. 200ms.",
)
@click.option(
    "--max-replication-lag",
    type=Size(),
    default=None,
    help="Wait while a replica lags more than this, e.g. 100MB.",
)
@click.option(
    "--synchronous-commit/--no-synchronous-commit",
    default=None,
    help="Wait for the WAL flush at each batch's COMMIT.  [default: no, as the procedure: a crash loses "
    "only the last batches together with their checkpoints, and the resume redoes them]",
)
@click.option("--vacuum", is_flag=True, help="Run VACUUM (ANALYZE) on the table after a finished run.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan (rows, slices, batches, estimated duration) and change nothing.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON lines (started, progress, finished|interrupted|error, summary).",
)
@click.option(
    "--progress-interval",
    type=Duration(),
    default=None,
    help="Seconds between progress lines when not on a terminal.  [default: 5s, 1s with --json]",
)
@click.pass_context
def rotate(ctx: click.Context, as_json: bool, progress_interval: float | None, **options: Any) -> None:
    """Start or resume the rotation of a table, with live progress and ETA."""
    db = target(ctx)
    app = ctx.obj["application_name"]
    renderer = choose_renderer(as_json, progress_interval)
    try:
        code = _rotate(db, app, renderer, **options)  # the options, typed, are _rotate's parameters
    except psycopg.Error as exc:
        err = from_pg(exc)
        renderer.error(err.format_message(), err.exit_code)
        renderer.close()
        raise err from None
    except ToolError as err:
        renderer.error(err.format_message(), err.exit_code)
        renderer.close()
        raise
    renderer.close()
    ctx.exit(code)


def choose_renderer(as_json: bool, interval: float | None) -> render.Renderer:
    if as_json:
        return render.JsonRenderer(interval=1.0 if interval is None else interval)
    if sys.stdout.isatty():
        return render.RichRenderer()
    return render.PlainRenderer(interval=5.0 if interval is None else interval)


def _rotate(
    db: connection.Target,
    app: str,
    renderer: render.Renderer,
    table: str,
    column: str,
    batch_size: int,
    max_batches: int | None,
    sleep: float | None,
    lock_timeout: float | None,
    lock_retries: int | None,
    workers: int | None,
    target_batch_time: float | None,
    max_replication_lag: int | None,
    synchronous_commit: bool | None,
    vacuum: bool,
    dry_run: bool,
) -> int:
    with connect(db.dsn, f"{app}/progress") as monitor:
        progress.check_installed(monitor)
        oid, qualified = progress.resolve_table(monitor, table)
        if dry_run:
            return _dry_run(monitor, renderer, oid, column, batch_size, workers or 1, lock_timeout)
        before = progress.sizes(monitor, oid)
        found = progress.open_run(monitor, oid)
        if found is None:
            threads = workers or 1
        else:
            _, unfinished, free = found
            threads = max(1, min(free, workers or free))  # free == 0: the CALL says who holds it
        options = Options(
            table_oid=oid,
            column=column,
            batch_size=batch_size,
            max_batches=max_batches,
            sleep=sleep,
            lock_timeout=lock_timeout,
            lock_retries=lock_retries,
            workers=workers or 1,
            target_batch_time=target_batch_time,
            max_replication_lag=max_replication_lag,
            synchronous_commit=synchronous_commit,
        )
        resume = resume_command(db, table, column, batch_size, workers)
        newest = progress.newest_run_id(monitor, oid)
        rotation = Rotation(db.dsn, options, threads, app)
        run_id = found[0] if found else None
        state = eta.Estimate()
        last: progress.Progress | None = None
        announced = False
        begun: float | None = None
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            rotation.start()
            while True:
                ended = rotation.done
                if run_id is None:
                    run_id = progress.run_after(monitor, oid, newest)
                if run_id is not None:
                    last = progress.read(monitor, run_id)
                    if last is not None:
                        if not announced:
                            renderer.started(started_info(db, last, found is not None, threads, batch_size))
                            announced = True
                        if begun is None and last.batches_done > 0:
                            begun = progress.startup(monitor, run_id)
                        state = eta.step(state, last.point, last.rows_total, startup=begun or 0.0)
                        if not ended:
                            renderer.progress(last, state.eta)
                if ended:
                    break
                rotation.wait(POLL_SECONDS)
        except KeyboardInterrupt:
            rotation.cancel()
            if run_id is None:
                run_id = progress.run_after(monitor, oid, newest)
            last = progress.read(monitor, run_id) if run_id is not None else last
            renderer.interrupted(last, resume)
            return EXIT_INTERRUPTED
        finally:
            signal.signal(signal.SIGTERM, previous)
        return _outcome(monitor, renderer, rotation, last, resume, oid, before, vacuum, qualified)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _outcome(
    monitor: psycopg.Connection,
    renderer: render.Renderer,
    rotation: Rotation,
    last: progress.Progress | None,
    resume: str,
    oid: int,
    before: progress.Sizes,
    vacuum: bool,
    qualified: str,
) -> int:
    """What the ended workers mean: done, stopped early, interrupted by someone else, or an error."""
    for warning in rotation.warnings:
        renderer.note(f"warning: {warning}")
    busy = [e for e in rotation.errors if e.sqlstate == "55006"]
    others = [e for e in rotation.errors if e.sqlstate != "55006"]
    if busy and (rotation.calls_done == 0 and not others):
        raise from_pg(busy[0])
    canceled = [e for e in others if e.sqlstate == "57014"]
    if canceled and len(canceled) == len(others):
        renderer.note(f"a worker's CALL was canceled: {describe(canceled[0])}")
        renderer.interrupted(last, resume)
        return EXIT_INTERRUPTED
    if others:
        raise from_pg(others[0])
    if last is None:
        raise ToolError("the run ended before it could be read", EXIT_OTHER)
    if last.state == "cancelled":
        renderer.interrupted(last, resume)
        renderer.note(
            f"run {last.run_id} was cancelled (token_rotation.cancel); the next rotate starts a new run"
        )
        return EXIT_INTERRUPTED
    if last.state != "finished":
        renderer.finished(
            last,
            {"message": f"stopped at {last.percent:.1f}% as asked (--max-batches); resume with: {resume}"},
        )
        return EXIT_OK
    after = progress.sizes(monitor, oid)
    report = growth_report(before, after, hint=not vacuum)
    renderer.finished(last, {"growth": report_data(before, after)})
    renderer.note(report, {"growth": report_data(before, after)})
    if vacuum:
        monitor.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.SQL(qualified)))
        cleaned = progress.sizes(monitor, oid)
        renderer.note(
            f"VACUUM (ANALYZE) {qualified}: dead tuples {format_count(cleaned.dead_tuples)}, table "
            f"{format_size(cleaned.table_bytes)}, indexes {format_size(cleaned.index_bytes)} "
            "(the freed space is reused)",
            {"after_vacuum": report_data(before, cleaned)},
        )
    return EXIT_OK


def growth_report(before: progress.Sizes, after: progress.Sizes, hint: bool = True) -> str:
    """Growth of the table and its indexes during the run, and the dead tuples it left."""
    return (
        f"table {format_size(before.table_bytes)} -> {format_size(after.table_bytes)}, indexes "
        f"{format_size(before.index_bytes)} -> {format_size(after.index_bytes)}, dead tuples "
        f"{format_count(after.dead_tuples)}"
        + (" (VACUUM reclaims them: rotate --vacuum, or autovacuum)" if hint else "")
    )


def report_data(before: progress.Sizes, after: progress.Sizes) -> dict[str, int]:
    return {
        "table_bytes_before": before.table_bytes,
        "table_bytes_after": after.table_bytes,
        "index_bytes_before": before.index_bytes,
        "index_bytes_after": after.index_bytes,
        "dead_tuples": after.dead_tuples,
    }


def started_info(
    db: connection.Target, p: progress.Progress, resumed: bool, threads: int, batch_size: int
) -> dict[str, Any]:
    verb = "resuming" if resumed else "rotating"
    total = format_count(p.rows_total) if p.rows_total_exact else f"about {format_count(p.rows_total)}"
    message = (
        f"{verb} run {p.run_id}: {total} rows of {p.table_name}.{p.token_column}, {p.workers} slice(s), "
        f"{threads} worker(s), batches of {batch_size}, in {db.masked()}"
    )
    if resumed:
        message += f" ({format_count(p.rows_done)} rows already done)"
    return {
        "message": message,
        "run_id": p.run_id,
        "table": p.table_name,
        "column": p.token_column,
        "resumed": resumed,
        "rows_total": p.rows_total,
        "rows_done": p.rows_done,
        "workers": threads,
        "batch_size": batch_size,
        "database": db.masked(),
    }


def resume_command(
    db: connection.Target, table: str, column: str, batch_size: int, workers: int | None
) -> str:
    """The command that resumes this run (never with a password in it)."""
    parts = ["token-rotation"]
    if db.source == "--dsn":
        parts.append("--dsn '<your DSN>'")
    parts += ["rotate", "--table", table]
    if column != "token":
        parts += ["--column", column]
    if batch_size != 3000:
        parts += ["--batch-size", str(batch_size)]
    if workers:
        parts += ["--workers", str(workers)]
    return " ".join(parts)


def _dry_run(
    monitor: psycopg.Connection,
    renderer: render.Renderer,
    oid: int,
    column: str,
    batch_size: int,
    workers: int,
    lock_timeout: float | None,
) -> int:
    given = lock_timeout is not None
    timeout = sql.SQL(", p_lock_timeout => make_interval(secs => %(lock_timeout)s)" if given else "")
    row = monitor.execute(
        sql.SQL(
            "SELECT table_name, key_column::text, rows_total, rows_exact, slices, batch_size, batches,"
            " sample_rows, sample_seconds, extract(epoch FROM estimated_duration)::float8"
            " FROM token_rotation.plan(%(oid)s::oid::regclass, p_column => %(column)s,"
            " p_batch_size => %(batch_size)s, p_workers => %(workers)s{})"
        ).format(timeout),
        {
            "oid": oid,
            "column": column,
            "batch_size": batch_size,
            "workers": workers,
            "lock_timeout": lock_timeout,
        },
    ).fetchone()
    if row is None:
        raise ToolError("token_rotation.plan() returned nothing")
    keys = ("table", "key_column", "rows_total", "rows_exact", "slices", "batch_size", "batches")
    data: dict[str, Any] = dict(zip(keys, row[:7], strict=True))
    data.update(sample_rows=row[7], sample_seconds=row[8], estimated_seconds=row[9], dry_run=True)
    total = format_count(row[2]) if row[3] else f"about {format_count(row[2])}"
    renderer.note(
        f"dry run, nothing changed: {row[0]} has {total} rows to rotate (key {row[1]}), {row[4]} slice(s), "
        f"{format_count(row[6])} batches of {row[5]}; a sample batch of {format_count(row[7])} rows took "
        f"{format_duration(row[8])} (rolled back): estimated duration {format_duration(row[9])}"
        f"; {_memory_fit(monitor, oid, data)}",
        data,
    )
    return EXIT_OK


def _memory_fit(monitor: psycopg.Connection, oid: int, data: dict[str, Any]) -> str:
    """The table's size against shared_buffers, read from the server (see memory_fit)."""
    sizes = monitor.execute(
        "SELECT total_bytes, pg_size_bytes(current_setting('shared_buffers'))"
        " FROM token_rotation.table_sizes(%s::oid::regclass)",
        (oid,),
    ).fetchone()
    if sizes is None or sizes[0] is None:
        return "working set unknown"
    data.update(working_set_bytes=int(sizes[0]), shared_buffers_bytes=int(sizes[1]))
    return memory_fit(int(sizes[0]), int(sizes[1]))


def memory_fit(table_and_indexes: int, shared_buffers: int) -> str:
    """Whether the table and its indexes fit in shared_buffers, now and once every row has a new version.
    The estimate of a dry run comes from one warm batch; past shared_buffers, each row's random token-index
    insert costs buffer misses, and the time per row grows (about 2x at 10M demo rows, BENCHMARKS.md)."""
    text = (
        f"table and indexes {format_size(table_and_indexes)} "
        f"(up to {format_size(2 * table_and_indexes)} as rows get new versions)"
    )
    if 2 * table_and_indexes <= shared_buffers:
        return f"{text}, shared_buffers {format_size(shared_buffers)}: fits"
    return (
        f"{text}, more than shared_buffers {format_size(shared_buffers)}: expect each row to cost more than "
        "the sample batch did (up to about 2x per row; BENCHMARKS.md, 10M rows)"
    )


# -------------------------------------------------------------------------------------- status / verify


@cli.command()
@click.option("--table", default=None, help="Only the runs of this table.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run.")
@click.pass_context
def status(ctx: click.Context, table: str | None, as_json: bool) -> None:
    """All runs with state and progress, and the ETA of active ones (whoever started them)."""
    with session(ctx) as conn:
        oid = progress.resolve_table(conn, table)[0] if table else None
        rows = []
        for p in progress.runs(conn, oid):
            seconds = progress.eta_from_log(conn, p).eta if p.state == "active" else None
            rows.append((p, seconds))
    if as_json:
        for p, seconds in rows:
            click.echo(
                json.dumps(render.progress_fields(p, seconds) | {"last_error": p.last_error}, default=str)
            )
        return
    if not rows:
        click.echo(
            "no runs" + (f" of {table}" if table else "") + " yet: token-rotation rotate --table TABLE"
        )
        return
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        grid = Table("run", "table", "state", "rows", "%", "rows/s", "elapsed", "ETA", "workers", "note")
        for p, seconds in rows:
            grid.add_row(*status_cells(p, seconds))
        Console(highlight=False).print(grid)
        return
    for p, seconds in rows:
        click.echo("  ".join(status_cells(p, seconds)))


def status_cells(p: progress.Progress, seconds: float | None) -> list[str]:
    note = p.throttled or (redact(p.last_error) if p.last_error else "")
    if p.open and p.active_workers == 0:
        note = f"nobody works on it: token-rotation rotate --table {p.table_name} resumes it" + (
            f" ({note})" if note else ""
        )
    return [
        str(p.run_id),
        p.table_name,
        p.state,
        f"{format_count(p.rows_done)}/{format_count(p.rows_total)}",
        f"{p.percent:.1f}",
        format_count(p.rows_per_second),
        format_duration(p.elapsed),
        format_duration(seconds) if p.open else "-",
        f"{p.active_workers}/{p.workers}",
        note,
    ]


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
            oid = progress.resolve_table(conn, table)[0] if table else None
            found = progress.runs(conn, oid)
            if not found:
                raise ToolError("no run to verify yet" + (f" for {table}" if table else ""), EXIT_BAD_INPUT)
            run_id = found[0].run_id
        checks = conn.execute(
            "SELECT check_name, ok, detail FROM token_rotation.verify(%s)", (run_id,)
        ).fetchall()
    failed = [c for c in checks if not c[1]]
    for name, ok, detail in checks:
        if as_json:
            click.echo(
                json.dumps({"run_id": run_id, "check": name, "ok": ok, "detail": redact(detail or "")})
            )
        else:
            click.echo(f"{'ok  ' if ok else 'FAIL'}  {name}: {redact(detail or '')}")
    if failed:
        raise ToolError(f"run {run_id}: {len(failed)} of {len(checks)} checks failed", EXIT_OTHER)
    if not as_json:
        click.echo(f"run {run_id}: all {len(checks)} checks passed")


# ------------------------------------------------------------------------------- pause / resume / cancel


def _control(ctx: click.Context, table: str, function: str, done: str) -> None:
    with session(ctx) as conn:
        oid, qualified = progress.resolve_table(conn, table)
        row = conn.execute(
            sql.SQL("SELECT token_rotation.{}(%s::oid::regclass)").format(sql.Identifier(function)),
            (oid,),
        ).fetchone()
    click.echo(f"{done} run {row[0] if row else '?'} of {qualified}")


@cli.command()
@click.option("--table", default="tickets", show_default=True, help="Table whose open run to pause.")
@click.pass_context
def pause(ctx: click.Context, table: str) -> None:
    """Pause a table's open run after its current batch (from any terminal)."""
    _control(ctx, table, "pause", "paused")


@cli.command(name="resume")
@click.option("--table", default="tickets", show_default=True, help="Table whose paused run to resume.")
@click.pass_context
def resume_(ctx: click.Context, table: str) -> None:
    """Resume a paused run: its waiting workers go on."""
    _control(ctx, table, "resume", "resumed")


@cli.command()
@click.option("--table", default="tickets", show_default=True, help="Table whose open run to cancel.")
@click.pass_context
def cancel(ctx: click.Context, table: str) -> None:
    """Cancel a table's open run: workers stop after their batch; the next rotate starts anew."""
    _control(ctx, table, "cancel", "cancelled")


# ----------------------------------------------------------------------------------------------- server


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
    cli.main(prog_name="token-rotation")
