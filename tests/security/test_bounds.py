"""Bounds checked before anything is stored, and the advisory-lock squatter named (issue 17, finding 12).

A lock timeout under 0.5 ms became 0 (wait for ever); '30 days' overflowed lock_timeout after set_options()
had stored it, and broke every later resume; p_sleep had no upper bound. Any role can take the tool's
advisory lock of a slice and block a run: that cannot be prevented, so the refusal names the holder.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from helpers import last_run_id


def _runs(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM token_rotation.runs").fetchone()
    assert row is not None
    return int(row[0])


def _open_run(conn: psycopg.Connection, table: str) -> int:
    """Starts a run of table and leaves it open after one batch."""
    conn.execute(
        "CALL token_rotation.rotate(%s, p_batch_size => 100, p_max_batches => 1, p_quiet => true)", (table,)
    )
    return last_run_id(conn, table)


@pytest.mark.parametrize(
    ("argument", "value"),
    [("p_lock_timeout", "0.1 ms"), ("p_lock_timeout", "30 days"), ("p_sleep", "2 hours")],
)
def test_rotate_refuses_an_out_of_range_duration_before_starting_a_run(
    conn: psycopg.Connection, victim: str, argument: str, value: str
) -> None:
    """A lock timeout of 0.1 ms (would become 0: wait for ever) or 30 days (overflows lock_timeout), a sleep
    of 2 hours: refused with 22023, DETAIL and HINT, and no run is started."""
    with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
        conn.execute(
            f"CALL token_rotation.rotate(%s, {argument} => %s::interval, p_quiet => true)", (victim, value)
        )
    assert refused.value.diag.message_detail and refused.value.diag.message_hint
    assert _runs(conn) == 0


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("p_lock_timeout", "0.1 ms"),
        ("p_lock_timeout", "30 days"),
        ("p_sleep", "2 hours"),
        ("p_target_batch_time", "2 hours"),
        ("p_max_replay_lag", "400 days"),
    ],
)
def test_set_options_refuses_an_out_of_range_duration_and_the_run_goes_on(
    conn: psycopg.Connection, victim: str, argument: str, value: str
) -> None:
    """set_options() with an out-of-range duration: refused with 22023, the run's options unchanged, and the
    run still resumes to its end."""
    run_id = _open_run(conn, victim)
    options = conn.execute("SELECT options FROM token_rotation.runs WHERE run_id = %s", (run_id,)).fetchone()
    with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
        conn.execute(f"SELECT token_rotation.set_options(%s, {argument} => %s::interval)", (victim, value))
    assert refused.value.diag.message_detail and refused.value.diag.message_hint
    assert (
        conn.execute("SELECT options FROM token_rotation.runs WHERE run_id = %s", (run_id,)).fetchone()
        == options
    )
    conn.execute("CALL token_rotation.rotate(%s, p_quiet => true)", (victim,))
    assert conn.execute("SELECT state FROM token_rotation.runs WHERE run_id = %s", (run_id,)).fetchone() == (
        "finished",
    )


def test_the_limits_of_lock_timeout_and_sleep_are_accepted(conn: psycopg.Connection, victim: str) -> None:
    """The bounds themselves pass: a lock timeout of 1 ms and of lock_timeout's maximum, a sleep of 1 hour."""
    _open_run(conn, victim)
    conn.execute(
        "SELECT token_rotation.set_options(%s, p_lock_timeout => '1 ms', p_sleep => '1 hour')", (victim,)
    )
    conn.execute("SELECT token_rotation.set_options(%s, p_lock_timeout => '2147483647 ms')", (victim,))


def test_a_hold_over_seven_days_is_refused_and_seven_days_is_kept(
    conn: psycopg.Connection, victim: str
) -> None:
    """hold() for 7 days and a second is refused with 22023 (the run keeps no hold); 7 days exactly is
    stored, ending 7 days from now."""
    run_id = _open_run(conn, victim)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SELECT token_rotation.hold(%s, 'too long', '7 days 1 second')", (victim,))
    held = "SELECT hold_reason, hold_until - clock_timestamp() FROM token_rotation.runs WHERE run_id = %s"
    assert conn.execute(held, (run_id,)).fetchone() == (None, None)
    conn.execute("SELECT token_rotation.hold(%s, 'a long freeze', '7 days')", (victim,))
    row = conn.execute(held, (run_id,)).fetchone()
    assert row is not None and row[0] == "a long freeze"
    assert timedelta(days=6, hours=23) < row[1] <= timedelta(days=7)


def test_a_role_squatting_a_slice_lock_is_named_with_its_pid_and_role(
    conn: psycopg.Connection, victim: str, attacker: str, attacker_conn: psycopg.Connection
) -> None:
    """The attacker takes the advisory lock of the victim's open slice: the superuser's CALL fails with
    55006, and its DETAIL names the attacker's pid and role, so that a DBA can terminate that backend."""
    run_id = _open_run(conn, victim)
    slice_id = conn.execute(
        "SELECT slice_id FROM token_rotation.slices WHERE run_id = %s", (run_id,)
    ).fetchone()
    assert slice_id is not None
    attacker_conn.execute("SET application_name = 'squatter'")
    attacker_conn.execute("SELECT pg_advisory_lock(1953198708, %s)", (slice_id[0],))
    pid = attacker_conn.execute("SELECT pg_backend_pid()").fetchone()
    assert pid is not None
    with pytest.raises(psycopg.errors.ObjectInUse) as refused:
        conn.execute("CALL token_rotation.rotate(%s, p_quiet => true)", (victim,))
    detail = refused.value.diag.message_detail or ""
    assert str(pid[0]) in detail and attacker in detail and "squatter" in detail, detail
    assert "pg_terminate_backend" in (refused.value.diag.message_hint or "") + detail
