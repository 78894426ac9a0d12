"""The workers of a rotation: one autocommit connection per worker, each CALLing token_rotation.rotate()
in its own thread (one slice of the run at a time), so that the main thread (runner.py) stays free to poll the
progress and to cancel them all at once.

psycopg cancels a query on Ctrl-C only in the thread that waits for it; the workers' threads never see
the signal, so `cancel()` sends each worker's backend a cancel request itself (`cancel_safe()`) until every
CALL has returned. The procedure rolls the current batch back, keeps the committed ones and raises 57014.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from token_rotation import connection
from token_rotation.errors import redact

# passed as seconds, turned into intervals
INTERVALS = {"sleep", "lock_timeout", "target_batch_time", "max_replay_lag", "older_than"}
PARAMETERS = {"slices": "p_workers", "token_format": "p_format"}  # where it differs from p_<field>
OPTIONS_CHANGED = "TROPT"  # the NOTICE of a resume that changes a run's stored options
CASTS = {"key": "name[]", "stop_at": "timestamptz"}  # cast to the parameter's type

# after a CALL: has the window ended (by the server's clock, which set it)?
WINDOW_ENDED = "SELECT pg_catalog.clock_timestamp() OPERATOR(pg_catalog.>=) %s::timestamptz"
# after a CALL: is there still a slice of this run that nobody works on?
MORE_WORK = (
    # on a worker's connection, which keeps the caller's search_path: every operator named with its schema
    "SELECT EXISTS (SELECT FROM token_rotation.progress"
    " WHERE table_name::oid OPERATOR(pg_catalog.=) %s::oid"
    " AND state::text OPERATOR(pg_catalog.=) 'active'::text"
    " AND free_slices OPERATOR(pg_catalog.>) 0)"
)


@dataclass(frozen=True)
class Options:
    """What `rotate` passes to the procedure (see sql/20_rotate.sql for the meaning of each). None means
    "not given": the procedure's own default applies, so the driver never contradicts it."""

    table_oid: int
    column: str | None = None
    batch_size: int | None = None
    max_batches: int | None = None
    sleep: float | None = None
    lock_timeout: float | None = None
    lock_retries: int | None = None
    slices: int | None = None  # slices of a new run (p_workers); a resumed run keeps its own
    target_batch_time: float | None = None
    max_replication_lag: int | None = None
    synchronous_commit: bool | None = None
    token_format: str | None = None
    prefix: str | None = None
    previous_column: str | None = None
    rotated_at_column: str | None = None
    key: list[str] | None = None  # the columns the run walks; None: the primary key, or a resumed run's own
    max_replay_lag: float | None = None
    max_archive_queue: int | None = None
    pause_on_autovacuum: bool | None = None
    trust_table_owner: bool | None = None  # run code of an owner the caller does not trust (per CALL)
    after_run: int | None = None  # start a new run only if none is newer than this (a late CALL does nothing)
    where: str | None = None  # the run's subset: one SQL expression over the table's columns
    older_than: float | None = None  # the subset of tokens older than this (seconds; with rotated_at_column)
    fill_null: bool | None = None  # give NULL tokens one (default: they keep NULL)
    stop_at: datetime | None = None  # the end of the window: every CALL stops there (the checkpoint kept)

    def call(self) -> tuple[sql.Composed, dict[str, object]]:
        """The CALL statement, with a named argument for each option given, and its parameters."""
        given = {k: v for k, v in vars(self).items() if k != "table_oid"}
        args, params = named_arguments(given)
        params["table"] = self.table_oid
        args = [sql.SQL("%(table)s::oid::regclass"), sql.SQL("p_quiet => true"), *args]
        return sql.SQL("CALL token_rotation.rotate({})").format(sql.SQL(", ").join(args)), params


def named_arguments(given: dict[str, object]) -> tuple[list[sql.Composable], dict[str, object]]:
    """`p_<name> => %(name)s` for each option given (not None), seconds turned into intervals, and their
    parameters: the arguments of rotate() and set_options() alike."""
    args: list[sql.Composable] = []
    params: dict[str, object] = {}
    for name, value in given.items():
        if value is None:
            continue
        params[name] = value
        placeholder: sql.Composable = sql.Placeholder(name)
        if name in INTERVALS:
            placeholder = sql.SQL("pg_catalog.make_interval(secs => {}::float8)").format(placeholder)
        if name in CASTS:
            placeholder = sql.SQL("{}::{}").format(placeholder, sql.SQL(CASTS[name]))
        parameter = PARAMETERS.get(name, f"p_{name}")
        args.append(sql.SQL("{} => {}").format(sql.Identifier(parameter), placeholder))
    return args, params


class Rotation:
    """N workers (threads), each with its own connection, CALLing the procedure until their run has no
    free slice left (or once, with max_batches). Errors are collected, not raised, in `errors`."""

    def __init__(self, dsn: str, options: Options, workers: int, application_name: str) -> None:
        self.dsn = dsn
        self.options = options
        self.application_name = application_name
        self.workers = workers
        self.errors: list[psycopg.Error] = []
        self.lost: list[psycopg.Error] = []  # those of workers whose connection broke (conn.broken)
        self.warnings: list[str] = []  # the procedure's WARNINGs (e.g. fewer rows than counted)
        self.changes: list[str] = []  # its NOTICEs that a resume changed the run's options
        self.calls_done = 0
        self.window_ended = False  # a CALL stopped at the end of the window (options.stop_at)
        self._conns: list[psycopg.Connection | None] = [None] * workers
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"worker-{i + 1}", daemon=True)
            for i in range(workers)
        ]
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._alive = workers

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wait(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds; True once every worker has ended."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def cancel(self, patience: float = 30.0) -> None:
        """Stops every worker: no new CALL, and a cancel request to each running one, repeated until all
        have returned (a request that arrives between two statements is lost)."""
        self._stopping.set()
        waited = 0.0
        while not self._done.is_set() and waited < patience:
            for conn in list(self._conns):
                if conn is not None and not conn.closed:
                    with contextlib.suppress(psycopg.Error, OSError):
                        conn.cancel_safe(timeout=5.0)
            self._done.wait(0.2)
            waited += 0.2

    def _work(self, index: int) -> None:
        try:
            conn = connection.connect(self.dsn, application_name=self.application_name)
        except psycopg.Error as exc:
            self._finish(exc)
            return
        self._conns[index] = conn
        conn.add_notice_handler(self._on_notice)
        error: psycopg.Error | None = None
        try:
            call, params = self.options.call()
            while not self._stopping.is_set():
                conn.execute(call, params)
                with self._lock:
                    self.calls_done += 1
                if self.options.max_batches is not None or self._stopping.is_set():
                    break
                if self.options.stop_at is not None and _true(conn, WINDOW_ENDED, self.options.stop_at):
                    self.window_ended = True
                    break
                if not _true(conn, MORE_WORK, self.options.table_oid):
                    break
        except psycopg.Error as exc:
            error = exc
            if conn.broken:  # the server ended the session (crash, shutdown, terminate) or the network did
                with self._lock:
                    self.lost.append(exc)
        finally:
            try:
                conn.close()
            finally:
                self._finish(error)

    def _on_notice(self, diag: psycopg.errors.Diagnostic) -> None:
        """Keeps WARNINGs and changed options (their primary message only: a DETAIL could in principle quote
        a row), redacted (errors.redact: no token shape, no control character)."""
        if diag.severity_nonlocalized == "WARNING" and diag.message_primary:
            with self._lock:
                self.warnings.append(redact(diag.message_primary))
        elif diag.sqlstate == OPTIONS_CHANGED and diag.message_primary:
            with self._lock:
                self.changes.append(redact(diag.message_primary))

    def _finish(self, error: psycopg.Error | None) -> None:
        with self._lock:
            if error is not None:
                self.errors.append(error)
            self._alive -= 1
            if self._alive == 0:
                self._done.set()


def _true(conn: psycopg.Connection, query: str, value: object) -> bool:
    row = conn.execute(query, (value,)).fetchone()
    return bool(row and row[0])
