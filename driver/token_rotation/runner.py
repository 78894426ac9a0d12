"""Running `token-rotation rotate`: start (or resume) a run with N workers, poll its progress, handle Ctrl-C
and SIGTERM, follow a run that goes on in another session, and turn what happened into the outcome and the
exit code. The VACUUM after a finished run lives here too; the dry run is dry_run.py's, drawing is
render.py's; the server's state is read through server_api.py; the workers are rotation.py's.

Words: a run's *slices* are its disjoint key ranges; its *workers* are the sessions (here: threads with one
connection each) working on them, one slice each.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, fields, replace
from datetime import datetime
from types import FrameType
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from token_rotation import connection, dry_run, errors, render, server_api, throttle
from token_rotation.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OTHER,
    ToolError,
    connection_lost,
    describe,
    from_pg,
    lost_message,
    redact,
)
from token_rotation.reclaim import DEFAULT_SHARE, Reclaimer
from token_rotation.rotation import Options, Rotation
from token_rotation.server_api import Progress
from token_rotation.throttle import ThrottleQuery
from token_rotation.units import format_count, format_duration, format_size

POLL_SECONDS = 0.5  # the progress view is read about twice a second


@dataclass(frozen=True)
class Request:
    """What `rotate` was asked to do (the command-line options, typed; None: the procedure's default)."""

    table: str
    column: str | None = None
    batch_size: int | None = None  # given: a fixed batch size (adaptive only with --target-batch-time)
    resuming: bool = (
        False  # an open run goes on: what is not given is the run's own (a run keeps its options)
    )
    max_batches: int | None = None
    sleep: float | None = None
    lock_timeout: float | None = None
    lock_retries: int | None = None
    workers: int | None = None
    target_batch_time: float | None = None
    max_replication_lag: int | None = None
    synchronous_commit: bool | None = None
    token_format: str | None = None
    prefix: str | None = None
    previous_column: str | None = None
    rotated_at_column: str | None = None
    key: list[str] | None = None
    max_replay_lag: float | None = None
    max_archive_queue: int | None = None
    pause_on_autovacuum: bool | None = None
    trust_table_owner: bool = False  # per CALL, not kept with the run
    where: str | None = None  # the run's subset, fixed when it starts
    older_than: float | None = None  # seconds: tokens older than this (with rotated_at_column)
    fill_null: bool = False  # give NULL tokens one (False: not given, the procedure's default keeps them)
    until: str | None = None  # HH:MM: the window ends at that time of the server's day (its next occurrence)
    window: float | None = None  # seconds: the window ends this long after the start (--for)
    stop_at: datetime | None = None  # the end of the window, by the server's clock (from until and window)
    throttle_query: str | None = None  # run by the driver (throttle.py), not passed to the procedure
    vacuum: bool = False
    reclaim: bool = True  # VACUUM from a side session as the run goes: on by default, whatever the way in
    reclaim_every: float = 100 * DEFAULT_SHARE  # percent of the table between two VACUUMs
    dry_run: bool = False
    sample: bool = False

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Request:
        return cls(**{f.name: options[f.name] for f in fields(cls) if f.name in options})

    def options(self, table_oid: int) -> Options:
        """The procedure's arguments: the fields of Options that `rotate` takes by the same name, None where
        not given, so that a new run takes the defaults of token_rotation.default_options() (the only place
        they are written) and a resume its own options."""
        same = {f.name: getattr(self, f.name) for f in fields(Options) if f.name in REQUEST_FIELDS}
        return replace(
            Options(table_oid=table_oid, **same),
            slices=self.workers or 1,
            trust_table_owner=self.trust_table_owner or None,  # False: not given
            fill_null=self.fill_null or None,
        )


REQUEST_FIELDS = {f.name for f in fields(Request)}


def rotate(
    db: connection.Target,
    app: str,
    request: Request,
    renderer: render.Renderer,
    resume: str | None = None,
) -> int:
    """Runs `rotate` to its outcome; returns the exit code, or raises a ToolError (already shown to the
    renderer, so that --json ends with an error event and a summary). `resume`: the command that resumes the
    run, as the caller's users type it (default: `token-rotation rotate --table ...`; Django's rotate_tokens
    passes its own)."""
    runner = Runner(db, app, request, renderer, resume)
    with errors.protecting():  # every message of this command hides the tokens of the run's format
        errors.protect(request.token_format, request.prefix)
        try:
            code = runner.run()
        except psycopg.Error as exc:
            err = (
                ToolError(lost_message(exc, runner.resume), EXIT_OTHER)
                if connection_lost(exc)
                else from_pg(exc)
            )
            renderer.error(err.format_message(), err.exit_code)
            renderer.close()
            raise err from None
        except ToolError as err:
            renderer.error(err.format_message(), err.exit_code)
            renderer.close()
            raise
    renderer.close()
    return code


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class Runner:
    """One `rotate`: a monitor connection polls the progress view while the workers CALL the procedure."""

    def __init__(
        self,
        db: connection.Target,
        app: str,
        request: Request,
        renderer: render.Renderer,
        resume: str | None = None,
    ) -> None:
        self.db = db
        self.app = app
        self.request = request
        self.renderer = renderer
        self.resume = resume or resume_command(db, request)
        self.run_id: int | None = None
        self.last: Progress | None = None
        self._announced = False
        self.reclaimer: Reclaimer | None = None
        self.throttle: ThrottleQuery | None = None
        self._held: str | None = None
        self.window_ended = False

    def run(self) -> int:
        with connection.connect_for_user(self.db.dsn, f"{self.app}/progress") as monitor:
            self.monitor = monitor
            server_api.check_installed(monitor)
            self.oid, self.qualified = server_api.resolve_table(monitor, self.request.table)
            if self.request.dry_run:
                return dry_run.plan(monitor, self.renderer, self.oid, self.request)
            before = server_api.sizes(monitor, self.oid)
            self.distributed = server_api.distributed(monitor, self.oid)
            found = server_api.open_run(monitor, self.oid)
            self.resumed = found is not None
            if found is not None:  # a resume goes on with the run's own format
                kept = server_api.run_options(monitor, found.run_id)
                errors.protect(kept.get("format"), kept.get("prefix"))
            if found is not None:
                self.request = replace(self.request, resuming=True)
            if self.request.until is not None or self.request.window is not None:
                self.request = replace(self.request, stop_at=window_end(monitor, self.request))
            self.newest = server_api.newest_run_id(monitor, self.oid)
            self.run_id = found.run_id if found else None
            # a worker per slice asked for; on resume, per free slice (none free: the CALL names the holder)
            workers = self.request.workers or 1
            if found is not None:
                workers = max(1, min(found.free_slices, self.request.workers or found.free_slices))
            if self.request.throttle_query is not None:
                self.throttle = ThrottleQuery(self.db.dsn, self.app, self.request.throttle_query, self.oid)
                self._throttle_first(self.throttle.check(), found is not None)
            if self.request.reclaim:
                self.reclaimer = Reclaimer(
                    self.db.dsn, self.app, self.qualified, self.request.reclaim_every / 100
                )
                self.reclaimer.start_mark(monitor)
            previous = signal.signal(signal.SIGTERM, _interrupt)
            code: int | None = EXIT_OTHER
            try:
                code = self._drive(workers)
            finally:
                signal.signal(signal.SIGTERM, previous)
                if self.throttle is not None:
                    self.throttle.close(monitor)
                if self.reclaimer is not None:
                    if code is not None:
                        self.reclaimer.cancel()
                    self.reclaimer.join(None if code is None else 5.0)
            if code is not None:
                return code
            return self._finished(before)

    def _drive(self, workers: int) -> int | None:
        """Works the run (taking over slices whoever left them) and follows other sessions on it, until the
        run is no longer open; returns an exit code when that is the outcome, None when the run ended."""
        first = True
        while True:
            # the run these workers are for: the open one, or the one the first of them starts; a CALL that
            # comes after it has ended must not start another (p_after_run)
            after = self.newest if self.run_id is None else self.run_id - 1
            options = replace(self.request.options(self.oid), after_run=after)
            # a Citus distributed table: one CALL, whose --workers are sessions per node (rotate_citus())
            sessions = 1 if self.distributed else workers
            rotation = Rotation(self.db.dsn, options, sessions, self.app)
            try:
                self._work(rotation)
            except KeyboardInterrupt:
                rotation.cancel()
                self._read()
                self.renderer.interrupted(self.last, self.resume)
                return EXIT_INTERRUPTED
            except psycopg.Error:
                rotation.cancel(patience=10.0)
                raise
            code = self._check(rotation, first)
            if code is not None:
                return code
            if self.last is None:
                raise ToolError("the run ended before it could be read", EXIT_OTHER)
            if not self.last.open or self.request.max_batches is not None or rotation.window_ended:
                self.window_ended = rotation.window_ended
                return None
            try:
                workers = self._follow(announce=first)
            except KeyboardInterrupt:
                self.renderer.detached(self.last, self._detached_message())
                return EXIT_INTERRUPTED
            if workers == 0:
                return None
            first = False

    def _read(self) -> None:
        if self.run_id is None:
            self.run_id = server_api.run_after(self.monitor, self.oid, self.newest)
        if self.run_id is not None:
            self.last = server_api.read(self.monitor, self.run_id) or self.last
        if self.reclaimer is not None and self.last is not None:
            self._reclaim(self.last)
        if self.throttle is not None and self.last is not None and self.last.open:
            failed = self.throttle.poll(self.monitor)
            if failed is not None:
                self.renderer.note(f"{failed}: the run waits while it fails", {"throttle_query": failed})

    def _throttle_first(self, wait: bool, resuming: bool) -> None:
        """The throttle query's first answer, before any worker starts: an open run is held at once; for a
        new run (no row to hold yet), this command waits until the query says go."""
        assert self.throttle is not None
        if wait and resuming:
            self.throttle.poll(self.monitor)
            return
        if wait:
            self.renderer.note("throttle query says wait: the run starts when it says go (Ctrl-C stops)")
        while wait:
            time.sleep(throttle.EVERY_SECONDS)
            wait = self.throttle.verdict().wait

    def _reclaim(self, p: Progress) -> None:
        """Starts the next VACUUM when another share of the table is done; says once who holds the xmin
        horizon when a VACUUM could not reclaim, and shows it on the bar while it lasts."""
        assert self.reclaimer is not None
        if p.state == "active":
            ended = self.reclaimer.poll(p.rows_done, p.rows_total)
            if ended is not None and ended.holders and ended.holders != self._held:
                self.renderer.note(
                    f"VACUUM {self.qualified} ({format_duration(ended.seconds)}) could not reclaim the old "
                    f"row versions: the xmin horizon is held by {ended.holders} (end that transaction, or "
                    "drop the slot, for the table to stop growing)",
                    {"xmin_holders": ended.holders},
                )
            if ended is not None:
                self._held = ended.holders
        if self._held and not p.xmin_holders:
            self.last = replace(p, xmin_holders=self._held)

    def _work(self, rotation: Rotation) -> None:
        """Starts the workers and draws the progress until every one of them has returned."""
        rotation.start()
        while True:
            ended = rotation.done
            self._read()
            if self.last is not None:
                if not self._announced:
                    kept = server_api.run_options(self.monitor, self.last.run_id)
                    errors.protect(kept.get("format"), kept.get("prefix"))
                    self.renderer.started(
                        started_info(
                            self.db, self.last, self.resumed, rotation, self.request, kept, self.distributed
                        )
                    )
                    self._announced = True
                if not ended:
                    self.renderer.progress(self.last)
            if ended:
                return
            rotation.wait(POLL_SECONDS)

    def _follow(self, announce: bool) -> int:
        """The run goes on in another session: polls its progress until it ends (returns 0) or until its
        slices are left free (returns how many, for new workers to take over)."""
        assert self.last is not None and self.run_id is not None
        others = server_api.holders(self.monitor, self.run_id) or "another session"
        if announce:
            self.renderer.note(
                f"run {self.run_id} continues in another session: {others}; following its progress to the "
                "end (Ctrl-C stops following, it does not cancel that session's CALL)",
                {"following": others},
            )
        while self.last.open:
            if self.last.state == "active" and self.last.workers == 0 and self.last.free_slices > 0:
                self.renderer.note(
                    f"nobody works on run {self.run_id} any more: taking over its {self.last.free_slices} "
                    "unfinished slice(s)"
                )
                return self.last.free_slices
            self.renderer.progress(self.last)
            time.sleep(POLL_SECONDS)
            self._read()
        return 0

    def _detached_message(self) -> str:
        p = self.last
        where = f" at {p.percent:.1f}%" if p else ""
        return (
            f"stopped following run {self.run_id}{where}: the session(s) working on it go on, their CALL was "
            f"not cancelled (token-rotation status shows the run; token-rotation cancel --table "
            f"{self.request.table} stops it)"
        )

    def _check(self, rotation: Rotation, first: bool) -> int | None:
        """What the ended workers' errors mean: none (None), a cancel (exit code), or an error (raised)."""
        for warning in rotation.warnings:
            self.renderer.note(f"warning: {warning}")
        for change in rotation.changes:
            self.renderer.note(change)
        if rotation.lost:
            raise ToolError(lost_message(rotation.lost[0], self.resume), EXIT_OTHER)
        # object_in_use: every unfinished slice of the run is taken
        busy = [e for e in rotation.errors if isinstance(e, pg_errors.ObjectInUse)]
        others = [e for e in rotation.errors if not isinstance(e, pg_errors.ObjectInUse)]
        if first and busy and rotation.calls_done == 0 and not others:
            raise from_pg(busy[0])  # every slice was taken before we began: exit 3, naming the holders
        canceled = [e for e in others if isinstance(e, pg_errors.QueryCanceled)]
        if canceled and len(canceled) == len(others):
            self.renderer.note(f"a worker's CALL was canceled: {describe(canceled[0])}")
            self.renderer.interrupted(self.last, self.resume)
            return EXIT_INTERRUPTED
        if others:
            raise from_pg(others[0])
        if self.last is not None and self.last.state == "cancelled":
            self.renderer.interrupted(self.last, self.resume)
            self.renderer.note(
                f"run {self.last.run_id} was cancelled (token_rotation.cancel); "
                "the next rotate starts a new run"
            )
            return EXIT_INTERRUPTED
        return None

    def _finished(self, before: server_api.Sizes) -> int:
        """The run ended (or stopped as asked with --max-batches): the summary, the growth, the VACUUM."""
        last = self.last
        assert last is not None
        if last.state == "cancelled":  # while followed: another session cancelled it
            self.renderer.interrupted(last, self.resume)
            self.renderer.note(
                f"run {last.run_id} was cancelled (token_rotation.cancel); the next rotate starts a new run"
            )
            return EXIT_INTERRUPTED
        if last.state != "finished":
            why = (
                "at the end of its window (--until, --for)"
                if self.window_ended
                else "as asked (--max-batches)"
            )
            message = f"stopped at {last.percent:.1f}% {why}; resume with: {self.resume}"
            self.renderer.finished(last, {"message": message})
            return EXIT_OK
        after = server_api.sizes(self.monitor, self.oid)
        data: dict[str, Any] = {"growth": report_data(before, after)}
        if self.reclaimer is not None:
            data["reclaim"] = {
                "vacuums": len(self.reclaimer.done),
                "index_vacuums": sum(v.indexes for v in self.reclaimer.done),
                "vacuum_seconds": round(sum(v.seconds for v in self.reclaimer.done), 3),
                "every_percent": self.request.reclaim_every,
            }
        self.renderer.finished(last, data)
        self.renderer.note(growth_report(before, after, hint=not self.request.vacuum), data)
        if self.reclaimer is not None:
            for err in self.reclaimer.errors[:1]:
                self.renderer.note(f"warning: a VACUUM during the run failed: {describe(err)}")
        if self.request.vacuum:
            self.monitor.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.SQL(self.qualified)))
            cleaned = server_api.sizes(self.monitor, self.oid)
            self.renderer.note(
                f"VACUUM (ANALYZE) {self.qualified}: dead tuples {format_count(cleaned.dead_tuples)}, table "
                f"{format_size(cleaned.table_bytes)}, indexes {format_size(cleaned.index_bytes)} "
                "(the freed space is reused)",
                {"after_vacuum": report_data(before, cleaned)},
            )
        return EXIT_OK


def window_end(monitor: psycopg.Connection, request: Request) -> datetime:
    """The end of the window, by the server's clock: --until HH:MM at its next occurrence in the server's
    time zone, --for after now; the earlier of the two when both are given."""
    row = monitor.execute(
        "SELECT LEAST("
        " (SELECT CASE WHEN d.m OPERATOR(pg_catalog.>) pg_catalog.now() THEN d.m"
        "  ELSE d.m OPERATOR(pg_catalog.+) '1 day'::pg_catalog.interval END"
        "  FROM (SELECT pg_catalog.date_trunc('day', pg_catalog.now())"
        "   OPERATOR(pg_catalog.+) %(until)s::pg_catalog.interval AS m) AS d),"
        " pg_catalog.now() OPERATOR(pg_catalog.+)"
        " pg_catalog.make_interval(secs => %(window)s::pg_catalog.float8))",
        {"until": request.until, "window": request.window},
    ).fetchone()
    assert row is not None and row[0] is not None
    return row[0]


def subset_text(options: dict[str, Any]) -> str:
    """The rows a run rotates, from its stored options (runs.options), for people: "where (tenant_id = 42),
    tokens older than 90 days, NULL tokens left alone"; empty for every row."""
    parts = []
    if options.get("where"):
        parts.append(f"where {redact(options['where'])}")
    if options.get("older_than"):
        parts.append(f"tokens older than {options['older_than']}")
    return ", ".join(parts)


def growth_report(before: server_api.Sizes, after: server_api.Sizes, hint: bool = True) -> str:
    """Growth of the table and its indexes during the run, and the dead tuples it left."""
    return (
        f"table {format_size(before.table_bytes)} -> {format_size(after.table_bytes)}, indexes "
        f"{format_size(before.index_bytes)} -> {format_size(after.index_bytes)}, dead tuples "
        f"{format_count(after.dead_tuples)}"
        + (" (VACUUM reclaims them: rotate --vacuum, or autovacuum)" if hint else "")
    )


def report_data(before: server_api.Sizes, after: server_api.Sizes) -> dict[str, int]:
    return {
        "table_bytes_before": before.table_bytes,
        "table_bytes_after": after.table_bytes,
        "index_bytes_before": before.index_bytes,
        "index_bytes_after": after.index_bytes,
        "dead_tuples": after.dead_tuples,
    }


def started_info(
    db: connection.Target,
    p: Progress,
    resumed: bool,
    rotation: Rotation,
    request: Request,
    kept: dict[str, Any] | None = None,
    distributed: bool = False,
) -> render.StartedEvent:
    """The `started` event; `kept` is the run's stored options (runs.options), which a resume goes on with;
    `distributed`: a Citus distributed table."""
    kept = kept or {}
    verb = "resuming" if resumed else "rotating"
    total = format_count(p.rows_total) if p.rows_total_exact else f"about {format_count(p.rows_total)}"
    workers = rotation.workers
    token_format = kept.get("format") or request.token_format or "uuid"
    # a Citus distributed table: one CALL on the coordinator, its slices the shards, --workers per node
    spread = (
        f"{p.slices} shard(s), {rotation.options.slices} session(s) per node"
        if distributed
        else f"{p.slices} slice(s), {workers} worker(s)"
    )
    message = (
        f"{verb} run {p.run_id}: {total} rows of {p.table_name}.{p.token_column}, {spread}, "
        f"{batches_text(request, kept)}, format {token_format}, in {db.masked()}"
    )
    subset = subset_text(kept)
    if subset:
        message += f", {subset}"
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
        "slices": p.slices,
        "workers": rotation.options.slices if distributed else workers,  # a distributed table: per node
        "batch_size": kept.get("batch_size"),
        "target_batch_time": kept.get("target_batch_time"),
        "format": token_format,
        "where": kept.get("where"),
        "older_than": kept.get("older_than"),
        "fill_null": bool(kept.get("fill_null")),
        "database": db.masked(),
    }


def batches_text(request: Request, kept: dict[str, Any]) -> str:
    """How the batches are sized, from the run's stored options (`kept`: the defaults of a new run, or what a
    resume goes on with): fixed, or adapted towards a time per batch."""
    if kept.get("target_batch_time"):
        text = f"batches adapted to about {format_duration(kept['target_batch_time'])} each"
        if not request.resuming and request.target_batch_time is None:
            return f"{text} (from {kept.get('batch_size')} rows; --batch-size N fixes the size)"
        return f"{text} (from {kept.get('batch_size')} rows)"
    return f"batches of {kept.get('batch_size')}"


def resume_command(db: connection.Target, request: Request) -> str:
    """The command that resumes this run (never with a password in it)."""
    parts = ["token-rotation"]
    if db.source == "--dsn":
        parts.append("--dsn '<your DSN>'")
    parts += ["rotate", "--table", request.table]
    if request.column is not None and request.column != "token":  # the run keeps every option; these two
        parts += ["--column", request.column]  # are repeated so that the command reads as the one typed
    if request.batch_size is not None:
        parts += ["--batch-size", str(request.batch_size)]
    if request.workers:
        parts += ["--workers", str(request.workers)]
    return " ".join(parts)
