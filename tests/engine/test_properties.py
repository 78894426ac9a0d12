"""Property-based (hypothesis): for any key set (holes, negatives, odd text; int, bigint, text, uuid and
timestamp keys), any batch size, any number of workers and any interruption point, under any DateStyle, the
run covers every key exactly once."""

from __future__ import annotations

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from background import finish_run
from helpers import assert_rotated_exactly_once, last_run_id, make_table, snapshot

KEYS = {
    # a dense cluster around zero and the whole range: runs of neighbours, huge holes, both extremes
    "integer": st.one_of(st.integers(-40, 40), st.integers(-(2**31), 2**31 - 1)),
    "bigint": st.one_of(st.integers(-40, 40), st.integers(-(2**63), 2**63 - 1)),
    "text": st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12),
    "uuid": st.uuids().map(str),
    "timestamp": st.datetimes().map(lambda d: d.isoformat()),
}
# session settings that change the text form of keys: a run started under one and resumed under another
DATESTYLES = ["ISO, MDY", "SQL, DMY", "SQL, MDY", "Postgres, DMY", "German"]


@st.composite
def key_sets(draw: st.DrawFn) -> tuple[str, list[object]]:
    """A key type and a set of distinct keys of that type (possibly empty)."""
    key_type = draw(st.sampled_from(sorted(KEYS)))
    keys = draw(st.lists(KEYS[key_type], max_size=300, unique=True))
    return key_type, keys


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    key_set=key_sets(),
    batch_size=st.integers(1, 120),
    workers=st.integers(1, 3),
    stop_after=st.one_of(st.none(), st.integers(1, 12)),
    cancel=st.booleans(),
    datestyles=st.tuples(st.sampled_from(DATESTYLES), st.sampled_from(DATESTYLES)),
)
def test_any_key_set_batch_size_and_interruption_point_is_covered_exactly_once(
    conn: psycopg.Connection,
    key_set: tuple[str, list[object]],
    batch_size: int,
    workers: int,
    stop_after: int | None,
    cancel: bool,
    datestyles: tuple[str, str],
) -> None:
    """A first CALL stopped after a random number of batches (p_max_batches), then either resumed, or
    cancelled and started anew, until the run is finished, the two under random DateStyles: verify and the
    snapshot agree that every key was rotated exactly once."""
    key_type, keys = key_set
    conn.execute("TRUNCATE token_rotation.runs CASCADE")
    make_table(conn, rows=0, key_type=key_type, key_expr="NULL")  # the keys come next
    conn.execute(
        sql.SQL(
            "INSERT INTO tickets (id, title, status, created_at)"
            " SELECT k, 'ticket ' || k, length(k::text), now() FROM unnest(%s::{}[]) AS k"
        ).format(sql.SQL(key_type)),
        ([str(k) for k in keys],),
    )
    before = snapshot(conn)
    call = (
        f"CALL token_rotation.rotate('tickets', p_batch_size => {batch_size}, p_workers => {workers},"
        " p_quiet => true{})"
    )
    conn.execute(sql.SQL("SET DateStyle = {}").format(sql.Literal(datestyles[0])))
    conn.execute(call.format("" if stop_after is None else f", p_max_batches => {stop_after}"))
    conn.execute(sql.SQL("SET DateStyle = {}").format(sql.Literal(datestyles[1])))
    if cancel and conn.execute(
        "SELECT count(*) FROM token_rotation.runs WHERE state = 'active'"
    ).fetchone() == (1,):
        conn.execute("SELECT token_rotation.cancel('tickets')")
    finish_run(conn, call.format(""))
    conn.execute("RESET DateStyle")
    assert_rotated_exactly_once(conn, before, last_run_id(conn))
