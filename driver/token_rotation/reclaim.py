"""Bounded growth: while a run goes on, VACUUM the table from a side session each time another share of it
has been rotated, so that the next batches reuse the space the earlier ones freed (the procedure cannot
VACUUM: it runs in a transaction). After each VACUUM, asks who holds the xmin horizon back
(token_rotation.xmin_holders): a long transaction, a replication slot or a prepared transaction, behind which
VACUUM can reclaim nothing.

One VACUUM at a time, in a thread with its own connection, so that the progress bar goes on; VACUUM
(SKIP_LOCKED) gives way when autovacuum is already working on the table (it reclaims the same space). Every
second VACUUM cleans the heap only, and none truncates the table (INDEX_EVERY below).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from token_rotation import connection
from token_rotation.errors import redact

DEFAULT_SHARE = 0.05  # VACUUM after each 5% of the table: BENCHMARKS.md, "Bounded growth"
# Every INDEX_EVERY-th VACUUM also cleans the indexes; the others free the rotated rows' old versions in the
# heap only (INDEX_CLEANUP OFF): the full scan of every index is most of a VACUUM's work, and the heap's freed
# space is what the next batches reuse. At 1M rows this takes 40% less VACUUM time than cleaning the indexes
# every time, for the same heap and heap + indexes within 0.02x (BENCHMARKS.md, "How does my application feel
# a run"). TRUNCATE false: VACUUM never takes the ACCESS EXCLUSIVE lock that giving empty pages at the end
# back to the system needs, which would stop every query on the table (and, replayed, on hot standbys).
INDEX_EVERY = 2

MARK = (
    # the moment and the oldest running transaction now: a holder older than this at the next VACUUM
    # kept that VACUUM from reclaiming what the batches since then left
    "SELECT clock_timestamp() AS at,"
    " (pg_snapshot_xmin(pg_current_snapshot())::text::numeric % 4294967296)::text::xid AS xmin"
)


@dataclass(frozen=True)
class Mark:
    at: datetime
    xmin: str


@dataclass(frozen=True)
class Vacuumed:
    """What one VACUUM did: how long it took, and who held the horizon back (None: nobody)."""

    seconds: float
    holders: str | None
    indexes: bool  # whether it cleaned the indexes too (else the heap only)


class Reclaimer:
    """VACUUMs `qualified` each time rows_done passes another `share` of rows_total."""

    def __init__(self, dsn: str, app: str, qualified: str, share: float) -> None:
        self.dsn = dsn
        self.app = f"{app}/vacuum"
        self.qualified = qualified
        self.share = share
        self.next_at: int | None = None
        self.holders: str | None = None  # from the latest VACUUM
        self.done: list[Vacuumed] = []
        self.errors: list[psycopg.Error] = []
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._mark: Mark | None = None

    def start_mark(self, monitor: psycopg.Connection) -> None:
        """Remembers the run's start as the first mark (holders older than it hold back the first VACUUM)."""
        with monitor.cursor(row_factory=dict_row) as cur:
            row = cur.execute(MARK).fetchone()
        if row is not None:
            self._mark = Mark(row["at"], str(row["xmin"]))

    @staticmethod
    def index_cleanup(number: int) -> bool:
        """Whether the number-th VACUUM of a run (from 1) cleans the indexes too."""
        return number % INDEX_EVERY == 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def poll(self, rows_done: int, rows_total: int) -> Vacuumed | None:
        """Starts a VACUUM when the next share is done and none is running; returns a VACUUM that ended since
        the last poll."""
        ended = None
        if self._thread is not None and not self._thread.is_alive():
            self._thread = None
            ended = self.done[-1] if self.done else None
        step = max(int(rows_total * self.share), 1)
        if self.next_at is None:
            self.next_at = rows_done + step
        if self._thread is None and rows_done >= self.next_at and rows_done < rows_total:
            self.next_at = rows_done + step
            self._thread = threading.Thread(target=self._vacuum, name="token-rotation-vacuum", daemon=True)
            self._thread.start()
        return ended

    def _vacuum(self) -> None:
        try:
            with connection.connect_for_user(self.dsn, self.app) as conn:
                self._conn = conn
                with conn.cursor(row_factory=dict_row) as cur:
                    mark_row = cur.execute(MARK).fetchone()
                    index = self.index_cleanup(len(self.done) + 1)
                    cur.execute(
                        sql.SQL("VACUUM (SKIP_LOCKED, TRUNCATE false, INDEX_CLEANUP {}) {}").format(
                            sql.SQL("ON" if index else "OFF"), sql.SQL(self.qualified)
                        )
                    )
                    row = cur.execute(
                        "SELECT extract(epoch FROM clock_timestamp() - %(at)s)::float8 AS seconds,"
                        " token_rotation.xmin_holders(%(since)s, %(xmin)s::xid) AS holders",
                        {
                            "at": mark_row["at"] if mark_row else None,
                            "since": self._mark.at if self._mark else None,
                            "xmin": self._mark.xmin if self._mark else None,
                        },
                    ).fetchone()
                if mark_row is not None:
                    self._mark = Mark(mark_row["at"], str(mark_row["xmin"]))
                if row is not None:
                    self.holders = None if row["holders"] is None else redact(row["holders"])
                    self.done.append(Vacuumed(float(row["seconds"] or 0), self.holders, index))
        except psycopg.Error as exc:
            self.errors.append(exc)
        finally:
            self._conn = None

    def cancel(self) -> None:
        """Cancels a running VACUUM (Ctrl-C, an error)."""
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.cancel_safe()

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
