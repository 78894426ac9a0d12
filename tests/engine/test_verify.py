"""token_rotation.verify() is shown to fail: a finished run's progress log damaged in each way a check
guards against makes that check false, and `token-rotation verify` exits 1. (The "finished" and
"tokens are unique" checks have their failing cases elsewhere: test_rotate.py, test_cli.py.)"""

from __future__ import annotations

import psycopg
import pytest

from background import run_cli
from helpers import assert_rotated_exactly_once, last_run_id, make_table, snapshot

# Each damage to a finished two-slice run of 1,000 rows (batches of 100) and the check it must make false.
DAMAGE = {
    "a middle batch deleted": (
        "DELETE FROM token_rotation.batches WHERE run_id = %(run)s AND slice_id = %(first_slice)s"
        " AND batch_no = 3",
        "batches chain without gap or overlap",
    ),
    "a batch's first key shifted": (
        "UPDATE token_rotation.batches SET after_key = ARRAY[(after_key[1]::bigint + 1000)::text]"
        " WHERE run_id = %(run)s AND slice_id = %(first_slice)s AND batch_no = 3",
        "batches chain without gap or overlap",
    ),
    "a slice's rows_done changed": (
        "UPDATE token_rotation.slices SET rows_done = rows_done - 1 WHERE slice_id = %(first_slice)s",
        "row counts agree with the log",
    ),
    "a slice's upper bound moved": (
        "UPDATE token_rotation.slices SET hi = ARRAY[(hi[1]::bigint - 1000)::text]"
        " WHERE slice_id = %(first_slice)s",
        "slices cover the key range",
    ),
}


def checks(conn: psycopg.Connection, run_id: int) -> dict[str, bool]:
    rows = conn.execute("SELECT check_name, ok FROM token_rotation.verify(%s)", (run_id,)).fetchall()
    return {str(r[0]): bool(r[1]) for r in rows}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_each_damage_to_a_finished_runs_log_fails_its_check_and_the_cli_exits_1(
    dsn: str, conn: psycopg.Connection, damage: str
) -> None:
    """A finished run passes every check; after the damage, the matching check is false, the others that
    do not depend on it still pass, and `token-rotation verify --run N` prints FAIL for it and exits 1. (No
    unique index on the token: the end check and verify find duplicates themselves.)"""
    make_table(conn, rows=1000, unique_token=False)
    before = snapshot(conn)
    call = "CALL token_rotation.rotate('tickets', p_batch_size => 100, p_workers => 2, p_quiet => true)"
    conn.execute(call)
    conn.execute(call)
    run_id = last_run_id(conn)
    assert_rotated_exactly_once(conn, before, run_id)
    assert set(checks(conn, run_id).values()) == {True}
    ok = run_cli(dsn, "verify", "--run", str(run_id))
    assert ok.returncode == 0, ok.stderr
    first_slice = conn.execute(
        "SELECT slice_id FROM token_rotation.slices WHERE run_id = %s AND slice_no = 1", (run_id,)
    ).fetchone()
    assert first_slice is not None
    statement, check = DAMAGE[damage]
    damaged = conn.execute(statement, {"run": run_id, "first_slice": first_slice[0]})  # type: ignore[arg-type]
    assert damaged.rowcount == 1
    result = checks(conn, run_id)
    assert result[check] is False, result
    assert result["tokens are unique"] is True
    cli = run_cli(dsn, "verify", "--run", str(run_id))
    assert cli.returncode == 1, cli.stderr
    assert f"FAIL  {check}:" in cli.stdout
    assert "checks failed" in cli.stderr
