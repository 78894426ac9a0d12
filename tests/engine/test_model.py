"""A stateful model of a run (hypothesis' RuleBasedStateMachine): random sequences of what DBAs, drivers and
the application do to a table and its run, on a real server, with the invariants checked after every step.

Steps: a CALL with a maximum of batches (sometimes with another sleep or batch size: a resume that changes
an option), pause or unpause, cancel, set_options, hold or lift, the application's INSERT, DELETE and
UPDATE of other columns, and a worker terminated in the middle of its batches (pg_terminate_backend).
Invariants after each step: at most one open run per table; the rows of the open run's snapshot whose token
changed are exactly those its committed checkpoints cover; every run only moves along legal states
(active <-> paused, then finished or cancelled for good). At the end the run is finished, verify() passes,
and every surviving row of its snapshot was rotated exactly once.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from background import terminate, wait_until
from helpers import Snapshot, assert_rotated_exactly_once, checkpointed_keys, make_table, snapshot

ROWS = 300  # keys 1000, 2000, ... 300000 (make_table's bigint keys): the application inserts between them
STEPS: Counter[str] = Counter()  # how often each rule ran, over every example of the test
LEGAL = {
    ("active", "paused"),
    ("paused", "active"),
    ("active", "finished"),
    ("active", "cancelled"),
    ("paused", "cancelled"),
}


class RunModel(RuleBasedStateMachine):
    """One table, its runs, and what the model expects of them."""

    conn: psycopg.Connection  # set by the test: an autocommit connection to the test's database
    dsn: str

    def __init__(self) -> None:
        super().__init__()
        self.before: Snapshot | None = None  # the open run's rows when it started (None: no open run)
        self.states: dict[int, str] = {}  # every run's state as last seen
        self.held = False
        self.next_key = 1

    @initialize()
    def fresh_table(self) -> None:
        self.conn.execute("DELETE FROM token_rotation.runs")
        make_table(self.conn, rows=ROWS)

    # --- what the model knows of the server

    def open_run(self) -> tuple[int, str] | None:
        row = self.conn.execute(
            "SELECT run_id, state FROM token_rotation.runs WHERE state IN ('active', 'paused')"
        ).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def paused(self) -> bool:
        found = self.open_run()
        return found is not None and found[1] == "paused"

    def can_call(self) -> bool:
        return not self.paused() and not self.held  # a CALL waits while the run is paused or held

    def before_a_call(self) -> None:
        """A CALL without an open run starts one: the rows it will rotate are the table's now."""
        if self.open_run() is None:
            self.before = snapshot(self.conn)

    # --- rules

    @precondition(lambda self: self.can_call())
    @rule(
        batches=st.integers(1, 4),
        batch_size=st.sampled_from([None, 15, 40]),
        sleep=st.sampled_from([None, "0", "1ms"]),
        workers=st.sampled_from([1, 2]),
    )
    def call(self, batches: int, batch_size: int | None, sleep: str | None, workers: int) -> None:
        STEPS["call"] += 1
        self.before_a_call()
        self.conn.execute(
            "CALL token_rotation.rotate('tickets', p_max_batches => %s, p_batch_size => %s,"
            " p_sleep => %s::interval, p_workers => %s, p_quiet => true)",
            (batches, batch_size, sleep, workers),
        )

    @precondition(lambda self: self.open_run() is not None)
    @rule()
    def pause_or_unpause(self) -> None:
        STEPS["pause_or_unpause"] += 1
        self.conn.execute(
            "SELECT token_rotation.unpause('tickets')"
            if self.paused()
            else "SELECT token_rotation.pause('tickets')"
        )

    @precondition(lambda self: self.open_run() is not None)
    @rule()
    def cancel(self) -> None:
        STEPS["cancel"] += 1
        self.conn.execute("SELECT token_rotation.cancel('tickets')")
        self.before = None
        self.held = False

    @precondition(lambda self: self.open_run() is not None)
    @rule(batch_size=st.sampled_from([10, 25, 60]))
    def set_options(self, batch_size: int) -> None:
        STEPS["set_options"] += 1
        self.conn.execute("SELECT token_rotation.set_options('tickets', p_batch_size => %s)", (batch_size,))

    @precondition(lambda self: self.open_run() is not None)
    @rule()
    def hold_or_lift(self) -> None:
        """A hold (its workers would wait with this reason), or lifting it."""
        STEPS["hold_or_lift"] += 1
        if self.held:
            self.conn.execute("SELECT token_rotation.hold('tickets', NULL)")
        else:
            self.conn.execute("SELECT token_rotation.hold('tickets', 'model says wait', '10 minutes')")
        self.held = not self.held

    @rule(slot=st.integers(0, ROWS))
    def app_inserts(self, slot: int) -> None:
        """A row between two existing keys (or past the last): behind the checkpoint it keeps its token,
        ahead of it the run rotates it; it is not among the rows the run started with."""
        STEPS["app_inserts"] += 1
        key = slot * 1000 + self.next_key
        self.next_key += 1
        self.conn.execute(
            "INSERT INTO tickets (id, title, status, created_at) VALUES (%s, 'new', 0, now())", (key,)
        )

    @rule(data=st.data())
    def app_deletes(self, data: st.DataObject) -> None:
        STEPS["app_deletes"] += 1
        keys = [r[0] for r in self.conn.execute("SELECT id FROM tickets ORDER BY id")]
        if keys:
            self.conn.execute("DELETE FROM tickets WHERE id = %s", (data.draw(st.sampled_from(keys)),))

    @rule(data=st.data())
    def app_updates(self, data: st.DataObject) -> None:
        """Another column of a row (its token is the tool's): the model takes the new digest."""
        STEPS["app_updates"] += 1
        keys = [r[0] for r in self.conn.execute("SELECT id FROM tickets ORDER BY id")]
        if not keys:
            return
        key = data.draw(st.sampled_from(keys))
        self.conn.execute("UPDATE tickets SET status = status + 1 WHERE id = %s", (key,))
        if self.before is not None and str(key) in self.before.others:
            self.before.others[str(key)] = snapshot(self.conn).others[str(key)]

    @precondition(lambda self: self.can_call())
    @rule()
    def worker_terminated(self) -> None:
        """A worker in the middle of its batches (10 rows, 200 ms apart) is terminated after its first one."""
        STEPS["worker_terminated"] += 1
        self.before_a_call()
        done_before = self.batches()
        worker = psycopg.connect(self.dsn, autocommit=True)
        pid = worker.info.backend_pid

        def work() -> None:
            with contextlib.suppress(psycopg.OperationalError):  # terminated: what the step is about
                worker.execute(
                    "CALL token_rotation.rotate('tickets', p_batch_size => 10, p_sleep => '200ms',"
                    " p_quiet => true)"
                )

        thread = threading.Thread(target=work)
        thread.start()
        wait_until(
            lambda: self.batches() > done_before or not thread.is_alive(), what="a batch of the worker"
        )
        if thread.is_alive():
            terminate(self.conn, pid)
        thread.join(30)
        worker.close()
        assert not thread.is_alive()
        if self.open_run() is not None:  # the run keeps the worker's sleep: back to none for the next steps
            self.conn.execute("SELECT token_rotation.set_options('tickets', p_sleep => '0')")

    def batches(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM token_rotation.batches").fetchone()
        return int(row[0]) if row else 0

    # --- invariants

    @invariant()
    def one_open_run(self) -> None:
        row = self.conn.execute(
            "SELECT count(*) FROM token_rotation.runs WHERE state IN ('active', 'paused')"
        ).fetchone()
        assert row is not None and row[0] <= 1

    @invariant()
    def legal_state_moves(self) -> None:
        for run_id, state in self.conn.execute("SELECT run_id, state FROM token_rotation.runs"):
            seen = self.states.get(run_id)
            assert seen is None or seen == state or (seen, state) in LEGAL, f"run {run_id}: {seen} -> {state}"
            self.states[run_id] = state
        found = self.open_run()
        if found is None and self.before is not None:
            self.before = None  # the run finished

    @invariant()
    def checkpoints_match_the_data(self) -> None:
        found = self.open_run()
        if found is None or self.before is None:
            return
        now = snapshot(self.conn)
        changed = {
            k for k, token in now.tokens.items() if k in self.before.tokens and self.before.tokens[k] != token
        }
        covered = checkpointed_keys(self.conn, found[0]) & set(self.before.tokens)
        assert changed == covered, (
            f"{len(changed - covered)} changed outside, {len(covered - changed)} missed"
        )

    def teardown(self) -> None:
        """Lift what stops the workers, finish the run with CALLs, and check it whole."""
        if self.held:
            self.conn.execute("SELECT token_rotation.hold('tickets', NULL)")
        if self.paused():
            self.conn.execute("SELECT token_rotation.unpause('tickets')")
        self.before_a_call()
        before = self.before
        assert before is not None
        for _ in range(10):
            self.conn.execute("CALL token_rotation.rotate('tickets', p_quiet => true)")
            if self.open_run() is None:
                break
        row = self.conn.execute("SELECT max(run_id) FROM token_rotation.runs").fetchone()
        assert row is not None
        assert_rotated_exactly_once(self.conn, before, int(row[0]), deleted_ok=True)


@pytest.fixture
def model(dsn: str, conn: psycopg.Connection) -> Iterator[type[RunModel]]:
    RunModel.conn = conn
    RunModel.dsn = dsn
    yield RunModel


@pytest.mark.slow
def test_any_sequence_of_calls_controls_and_application_writes_keeps_every_invariant(
    model: type[RunModel],
) -> None:
    STEPS.clear()
    run_state_machine_as_test(
        model,
        settings=settings(
            max_examples=40,
            stateful_step_count=20,
            deadline=None,
            derandomize=True,  # the same sequences on every run: a deterministic suite
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
    rules = {"call", "pause_or_unpause", "cancel", "set_options", "hold_or_lift", "app_inserts",
             "app_deletes", "app_updates", "worker_terminated"}  # fmt: skip
    assert set(STEPS) == rules, STEPS  # every kind of step ran
