"""--throttle-query: the user's own health check, gh-ost's throttle query. A query that returns one boolean;
true means the run waits. The driver runs it, not the procedure: a procedure cannot give a statement it runs a
statement_timeout of its own (the CALL's one timer covers all of it), and the driver can. So the query runs
on a connection of its own, every second while the run goes on, and keeps the promise "read-only, 1 s" by
construction rather than by a session setting the query itself could undo:

- it is sent with the extended protocol (one Parse message), so a `;` that closes the wrapper and adds
  statements is a syntax error ("cannot insert multiple commands into a prepared statement"), not a script;
- each poll is its own transaction, begun READ ONLY, with SET LOCAL statement_timeout, and always rolled back:
  whatever the query sets (set_config(..., false) included) is undone before the next poll.

The query sees the user's own search_path (it is the user's query); the driver's bookkeeping calls
(token_rotation.hold) go through the monitor connection, whose path is pinned (connection.PINNED_PATH).

When it says wait, or fails (an error, a timeout), the driver holds the run with token_rotation.hold() for
HOLD_SECONDS and renews the hold while that lasts: every worker of the run waits with the reason in
progress.throttled, whichever session it runs in. When the query says go again, the driver lifts its hold;
a hold left by a driver that died runs out by itself. Errors are reported by their class and SQLSTATE only:
an error message can quote a value of the database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from psycopg import postgres

from token_rotation import connection
from token_rotation.errors import EXIT_BAD_INPUT, ToolError, describe

TIMEOUT_MS = 1000  # statement_timeout of the query
EVERY_SECONDS = 1.0  # how often it runs while the run goes on
HOLD_SECONDS = 5  # how long one verdict of "wait" holds the run (renewed each time it runs)
BOOL_OID = postgres.types["bool"].oid
FAILED = "throttle query failed"


@dataclass(frozen=True)
class Verdict:
    wait: bool
    reason: str | None  # the hold's reason when wait; None when the run may go on


def wrapped(query: str) -> str:
    """The query as a subquery: one statement only (a second one is a syntax error there), any query that
    returns rows (SELECT, VALUES, WITH); a trailing semicolon is dropped."""
    body = query.strip().rstrip(";").strip()
    if not body:
        raise ToolError("--throttle-query is empty: pass e.g. \"SELECT count(*) > 50 FROM pg_stat_activity\"",
                        EXIT_BAD_INPUT)  # fmt: skip
    return f"SELECT * FROM (\n{body}\n) AS throttle_query LIMIT 2"


class ThrottleQuery:
    """Runs the query on its own connection and holds or frees the run of `table_oid` by its answer."""

    def __init__(self, dsn: str, app: str, query: str, table_oid: int) -> None:
        self.statement = wrapped(query)
        self.table_oid = table_oid
        self.conn = connection.connect(dsn, application_name=f"{app}/throttle-query")
        self.conn.execute(f"SET statement_timeout = {TIMEOUT_MS}")
        self.conn.execute("SET default_transaction_read_only = on")
        # from here on every statement runs in a transaction that _ask() rolls back: BEGIN READ ONLY
        self.conn.autocommit = False
        self.conn.read_only = True
        self.held: str | None = None  # the reason of the hold this driver set last
        self._next = 0.0

    def check(self) -> bool:
        """Runs the query once before the run starts: refuses (exit 2) one that fails or does not return
        one boolean in at most one row. Returns its first answer (True: wait)."""
        try:
            return self._ask()
        except psycopg.Error as exc:
            raise ToolError(
                f"--throttle-query failed: {describe(exc)}; it must run within {TIMEOUT_MS} ms, read-only",
                EXIT_BAD_INPUT,
            ) from None
        except ValueError as exc:
            raise ToolError(
                f"--throttle-query {exc} (true: wait; false, NULL or no row: go), "
                "e.g. SELECT count(*) > 50 FROM pg_stat_activity",
                EXIT_BAD_INPUT,
            ) from None

    def _ask(self) -> bool:
        """One poll: BEGIN READ ONLY, SET LOCAL statement_timeout, the query in one Parse message (binary
        results force the extended protocol: no second statement), ROLLBACK whatever happened."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(f"SET LOCAL statement_timeout = {TIMEOUT_MS}")
                cur.execute(self.statement, binary=True)
                described = cur.description or []
                if len(described) != 1 or described[0].type_code != BOOL_OID:
                    raise ValueError("must return one boolean column")
                rows = cur.fetchall()
        finally:
            if not self.conn.closed:
                self.conn.rollback()
        if len(rows) > 1:
            raise ValueError("must return at most one row")
        return bool(rows and rows[0][0])

    def verdict(self) -> Verdict:
        """The query's answer now: wait (true), go (false, NULL, no row), or wait because it failed."""
        try:
            return Verdict(True, "throttle query says wait") if self._ask() else Verdict(False, None)
        except psycopg.errors.QueryCanceled:
            return Verdict(True, f"{FAILED}: over its {TIMEOUT_MS} ms statement_timeout")
        except psycopg.Error as exc:
            return Verdict(True, f"{FAILED}: {type(exc).__name__} (SQLSTATE {exc.sqlstate})")
        except ValueError as exc:
            return Verdict(True, f"{FAILED}: it {exc}")

    def poll(self, monitor: psycopg.Connection) -> str | None:
        """Every EVERY_SECONDS: asks the query and holds the run (renewing the hold) or lifts this driver's
        hold. Returns the reason of a new failure to report, once per distinct failure."""
        now = time.monotonic()
        if now < self._next:
            return None
        self._next = now + EVERY_SECONDS
        answer = self.verdict()
        report = None
        if answer.wait:
            if answer.reason != self.held and answer.reason and answer.reason.startswith(FAILED):
                report = answer.reason
            monitor.execute(
                "SELECT token_rotation.hold(%s::oid::regclass, %s,"
                " pg_catalog.make_interval(secs => %s::float8))",
                (self.table_oid, answer.reason, HOLD_SECONDS),
            )
            self.held = answer.reason
        elif self.held is not None:
            self.lift(monitor)
        return report

    def lift(self, monitor: psycopg.Connection) -> None:
        """Lifts the hold this driver set, if the run is still open (a finished run has none to lift)."""
        if self.held is not None:
            monitor.execute(
                "SELECT token_rotation.hold(%s::oid::regclass, NULL) FROM token_rotation.runs"
                " WHERE target::oid OPERATOR(pg_catalog.=) %s::oid"
                " AND state::text OPERATOR(pg_catalog.=) ANY ('{active,paused}'::text[])",
                (self.table_oid, self.table_oid),
            )
            self.held = None

    def close(self, monitor: psycopg.Connection | None) -> None:
        if monitor is not None and not monitor.closed:
            self.lift(monitor)
        self.conn.close()
