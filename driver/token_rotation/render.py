"""All the drawing of the command line: a run's progress as a live rich bar on a terminal, plain lines at a
steady interval in a pipe or a log, or JSON lines (`--json`) for programs (the three take the same calls);
the seed bar; the `status` table (redrawn by `status --watch`), its JSON lines and its Prometheus text
exposition (`status --format prometheus`); the `verify` lines. None prints a token or a password (what they
show is counts and times, and the server's messages pass through errors.redact).

The ETA shown is always the `eta` column of the token_rotation.progress view: the one ETA, the same number
a DBA reads in psql."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from datetime import datetime
from typing import IO, Any, Protocol, TypedDict

import click

from token_rotation.errors import EXIT_BAD_INPUT, ToolError, redact
from token_rotation.server_api import Progress
from token_rotation.units import format_count, format_duration


def eta_of(p: Progress, live: bool = True) -> float | None:
    """The ETA to show: 0 for a finished run, the view's ETA for an open (active or paused) one unless the
    driver has stopped working on it (`live` false), else none."""
    if p.state == "finished":
        return 0.0
    return p.eta if live and p.open else None


class ProgressFields(TypedDict):
    """The fields of a `progress` event of `rotate --json` (and of `finished`, `interrupted`, `detached`, and
    each run of `status --json`): the numbers every renderer shows, as JSON-friendly values."""

    run_id: int
    table: str
    state: str  # active, paused, finished, cancelled
    rows_done: int
    rows_total: int
    rows_total_exact: bool  # false: estimated from the statistics (a big table)
    percent: float
    rows_per_second: int
    elapsed: float  # seconds of working time (paused time not counted), carried over by a resume
    eta: float | None  # seconds, the progress view's ETA; None while unknown
    batches_done: int
    slices: int  # the run's key slices
    workers: int  # the sessions working on them now
    sessions: int  # workers under its old name, until the next release
    throttled: str | None  # why the workers wait (pause, hold, health), None when they work
    xmin_holders: str | None  # what keeps VACUUM from reclaiming, when something does


class StartedEvent(TypedDict):
    """The fields of the `started` event of `rotate --json`: the run and how it will go."""

    message: str  # the line a person reads
    run_id: int
    table: str
    column: str
    resumed: bool
    rows_total: int
    rows_done: int  # already done by an earlier CALL of the run
    slices: int
    workers: int | None  # sessions of this command (per node for a Citus distributed table)
    batch_size: int | None  # the fixed size, or the adaptive sizing's current start
    target_batch_time: float | None  # seconds; None: fixed batches
    format: str
    where: str | None
    older_than: str | None
    fill_null: bool
    database: str  # the DSN without its password


def progress_fields(p: Progress, live: bool = True) -> ProgressFields:
    """The numbers every renderer shows, as JSON-friendly values."""
    eta_seconds = eta_of(p, live)
    return {
        "run_id": p.run_id,
        "table": p.table_name,
        "state": p.state,
        "rows_done": p.rows_done,
        "rows_total": p.rows_total,
        "rows_total_exact": p.rows_total_exact,
        "percent": round(p.percent, 1),
        "rows_per_second": p.rows_per_second,
        "elapsed": round(p.elapsed, 3),
        "eta": None if eta_seconds is None else round(eta_seconds, 1),
        "batches_done": p.batches_done,
        "slices": p.slices,
        "workers": p.workers,
        "sessions": p.workers,
        "throttled": p.throttled,
        "xmin_holders": p.xmin_holders,
    }


def progress_line(p: Progress, live: bool = True) -> str:
    """One line for people: rows done/total, percent, rows/s, elapsed, ETA, and why it waits."""
    eta_seconds = eta_of(p, live)
    total = format_count(p.rows_total) if p.rows_total_exact else f"~{format_count(p.rows_total)}"
    line = (
        f"{p.table_name}: {format_count(p.rows_done)}/{total} rows ({p.percent:.1f}%), "
        f"{format_count(p.rows_per_second)} rows/s, elapsed {format_duration(p.elapsed)}, "
        f"ETA {format_duration(eta_seconds)}"
    )
    if p.state == "paused":
        line += " [paused]"
    elif p.throttled:
        line += f" [throttled: {p.throttled}]"
    if p.xmin_holders:
        line += f" [{held_back(p.xmin_holders)}]"
    return line


def held_back(holders: str) -> str:
    """Says that VACUUM cannot reclaim the old row versions, and who holds the xmin horizon."""
    return f"VACUUM cannot reclaim old row versions, the xmin horizon is held by: {holders}"


def summary_line(p: Progress) -> str:
    """The one-line summary a finished run ends with."""
    return (
        f"rotated {format_count(p.rows_done)} rows of {p.table_name} in {format_duration(p.elapsed)} "
        f"({format_count(p.rows_per_second)} rows/s), run {p.run_id}"
    )


class Renderer(Protocol):
    def started(self, info: StartedEvent) -> None: ...
    def progress(self, p: Progress) -> None: ...
    def finished(self, p: Progress, extra: dict[str, Any]) -> None: ...
    def interrupted(self, p: Progress | None, resume: str) -> None: ...
    def detached(self, p: Progress | None, message: str) -> None: ...
    def error(self, message: str, exit_code: int) -> None: ...
    def note(self, text: str, data: dict[str, Any] | None = None) -> None: ...
    def close(self) -> None: ...


class JsonRenderer:
    """JSON lines: started, progress (at most every `interval` s), finished | interrupted | error, summary."""

    def __init__(self, out: IO[str] | None = None, interval: float = 1.0) -> None:
        self.out = out or sys.stdout
        self.interval = interval
        self._last = 0.0
        self._summary: dict[str, Any] = {}

    def _emit(self, event: str, data: Mapping[str, Any]) -> None:
        self.out.write(json.dumps({"event": event, **data}, default=str) + "\n")
        self.out.flush()

    def started(self, info: StartedEvent) -> None:
        self._summary.update(info)
        self._emit("started", info)

    def progress(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._emit("progress", progress_fields(p))

    def finished(self, p: Progress, extra: dict[str, Any]) -> None:
        data = {**progress_fields(p), **extra}
        self._summary.update(data, outcome="finished" if p.state == "finished" else "stopped", exit_code=0)
        self._emit("finished", data)

    def interrupted(self, p: Progress | None, resume: str) -> None:
        data: dict[str, Any] = {**(progress_fields(p, live=False) if p else {}), "resume": resume}
        self._summary.update(data, outcome="interrupted", exit_code=130)
        self._emit("interrupted", data)

    def detached(self, p: Progress | None, message: str) -> None:
        data: dict[str, Any] = {**(progress_fields(p) if p else {}), "message": message}
        self._summary.update(data, outcome="stopped following", exit_code=130)
        self._emit("detached", data)

    def error(self, message: str, exit_code: int) -> None:
        self._summary.update(outcome="error", exit_code=exit_code, message=message)
        self._emit("error", {"message": message, "exit_code": exit_code})

    def note(self, text: str, data: dict[str, Any] | None = None) -> None:
        self._summary.update(data or {})
        self._emit("note", {"message": text, **(data or {})})

    def close(self) -> None:
        if self._summary:
            self._emit("summary", self._summary)


class PlainRenderer:
    """Plain lines for a pipe or a log file: a progress line every `interval` seconds."""

    def __init__(self, out: IO[str] | None = None, interval: float = 5.0) -> None:
        self.out = out or sys.stdout
        self.interval = interval
        self._last = 0.0

    def _line(self, text: str) -> None:
        self.out.write(f"{datetime.now():%H:%M:%S} {text}\n")
        self.out.flush()

    def started(self, info: StartedEvent) -> None:
        self._line(info["message"])

    def progress(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._line(progress_line(p))

    def finished(self, p: Progress, extra: dict[str, Any]) -> None:
        self._line(progress_line(p, live=p.state == "finished"))
        self._line(summary_line(p) if p.state == "finished" else extra.get("message", ""))

    def interrupted(self, p: Progress | None, resume: str) -> None:
        if p is not None:
            self._line(progress_line(p, live=False))
        self._line(interrupted_line(p, resume))

    def detached(self, p: Progress | None, message: str) -> None:
        if p is not None:
            self._line(progress_line(p))
        self._line(message)

    def error(self, message: str, exit_code: int) -> None:
        pass  # the command prints the error itself, on stderr

    def note(self, text: str, data: dict[str, Any] | None = None) -> None:
        self._line(text)

    def close(self) -> None:
        pass


def interrupted_line(p: Progress | None, resume: str) -> str:
    if p is None:
        return f"interrupted before the run started; to start again: {resume}"
    return (
        f"interrupted: run {p.run_id} stopped at {format_count(p.rows_done)} of "
        f"{format_count(p.rows_total)} rows ({p.percent:.1f}%); every committed batch is kept. "
        f"Resume with: {resume}"
    )


class RichRenderer:
    """A live progress bar on a terminal (rich): rows done/total, percent, rows/s, elapsed, ETA. rich is
    imported when the run has begun, so that its import overlaps the CALL instead of delaying it."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._console: Any = None
        self.task: Any = None

    def _ensure(self) -> Any:
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn
            from rich.progress import Progress as Bar

            self._console = Console(highlight=False)
            self._bar = Bar(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[rows]} rows"),
                TextColumn("{task.fields[percent]:>6}"),
                TextColumn("{task.fields[rate]} rows/s"),
                TextColumn("elapsed {task.fields[elapsed]}"),
                TextColumn("ETA {task.fields[eta]}"),
                TextColumn("[yellow]{task.fields[note]}"),
                console=self._console,
                auto_refresh=False,
            )
        return self._bar

    def _print(self, text: str) -> None:
        self._ensure()
        self._console.print(text, markup=False)

    def started(self, info: StartedEvent) -> None:
        self._print(info["message"])
        self._ensure().start()

    def progress(self, p: Progress, live: bool = True) -> None:
        from rich.markup import escape

        bar = self._ensure()
        total = format_count(p.rows_total) if p.rows_total_exact else f"~{format_count(p.rows_total)}"
        fields: dict[str, Any] = {
            "rows": f"{format_count(p.rows_done)}/{total}",
            "percent": f"{p.percent:.1f}%",
            "rate": format_count(p.rows_per_second),
            "elapsed": format_duration(p.elapsed),
            "eta": format_duration(eta_of(p, live)),
            "note": escape(
                "; ".join(
                    n
                    for n in (
                        "paused"
                        if p.state == "paused"
                        else (f"throttled: {p.throttled}" if p.throttled else ""),
                        held_back(p.xmin_holders) if p.xmin_holders else "",
                    )
                    if n
                )
            ),
        }
        if self.task is None:
            self.task = bar.add_task(escape(p.table_name), total=max(p.rows_total, 1), **fields)
        bar.update(self.task, completed=min(p.rows_done, max(p.rows_total, 1)), **fields)
        bar.refresh()

    def finished(self, p: Progress, extra: dict[str, Any]) -> None:
        self.progress(p, live=p.state == "finished")
        self._ensure().stop()
        self._print(summary_line(p) if p.state == "finished" else extra.get("message", ""))

    def interrupted(self, p: Progress | None, resume: str) -> None:
        if p is not None:
            self.progress(p, live=False)
        self._ensure().stop()
        self._print(interrupted_line(p, resume))

    def detached(self, p: Progress | None, message: str) -> None:
        if p is not None:
            self.progress(p)
        self._ensure().stop()
        self._print(message)

    def error(self, message: str, exit_code: int) -> None:
        if self._bar is not None:
            self._bar.stop()

    def note(self, text: str, data: dict[str, Any] | None = None) -> None:
        self._print(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def renderer_for(as_json: bool, interval: float | None) -> Renderer:
    """JSON lines when asked, a live bar on a terminal, plain lines otherwise."""
    if as_json:
        return JsonRenderer(interval=1.0 if interval is None else interval)
    if sys.stdout.isatty():
        return RichRenderer()
    return PlainRenderer(interval=5.0 if interval is None else interval)


class SeedBar:
    """The progress of `seed`: a rich bar on a terminal, a line every ten batches otherwise."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.tty = sys.stdout.isatty()
        self._bar: Any = None
        self._task: Any = None

    def update(self, done: int, total: int) -> None:
        if not self.tty:
            if done == total or done % max(self.batch * 10, 1) < self.batch:
                click.echo(f"seeded {format_count(done)}/{format_count(total)} rows")
            return
        if self._bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                "seeding", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), auto_refresh=False
            )
            self._bar.start()
            self._task = self._bar.add_task("seed", total=max(total, 1))
        self._bar.update(self._task, completed=done)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


STATUS_HEADERS = ("run", "table", "state", "rows", "%", "rows/s", "elapsed", "ETA", "workers/slices", "note")


def status_cells(p: Progress) -> list[str]:
    """One row of the `status` table; a run nobody works on says how to resume it."""
    note = p.throttled or p.last_error or ""  # both redacted when read (Progress.from_row)
    if p.xmin_holders:
        note = "; ".join(n for n in (note, held_back(p.xmin_holders)) if n)
    subset = (p.options or {}).get("where")
    if subset:
        note = "; ".join(n for n in (f"where {redact(subset)}", note) if n)
    if p.open and p.workers == 0:
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
        format_duration(eta_of(p)) if p.open else "-",
        f"{p.workers}/{p.slices}",
        note,
    ]


def status_format(output_format: str | None, as_json: bool, watch: bool) -> str:
    """The output format `status` was asked for: --json is --format json; --watch redraws the table only."""
    if as_json and output_format not in (None, "json"):
        raise ToolError(
            f"--json is --format json: drop one of --json and --format {output_format}", EXIT_BAD_INPUT
        )
    chosen = "json" if as_json else (output_format or "table")
    if watch and chosen != "table":
        raise ToolError(
            f"--watch redraws the table; --format {chosen} prints once (a collector asks again)",
            EXIT_BAD_INPUT,
        )
    return chosen


def status(
    runs: list[Progress], output_format: str, table: str | None, jobs: list[dict[str, Any]] | None = None
) -> None:
    """The `status` output: one JSON object per run (and per schedule, "kind": "schedule"), Prometheus text,
    a table on a terminal, or plain lines; the schedules (token-rotation schedule) after the runs."""
    jobs = jobs or []
    if output_format == "prometheus":
        click.echo(prometheus(runs) + prometheus_schedules(jobs), nl=False)
        return
    if output_format == "json":
        for p in runs:
            extra = {
                "last_error": p.last_error,
                "options": p.options,
                "where": (p.options or {}).get("where"),
            }
            click.echo(json.dumps(progress_fields(p) | extra, default=str))
        for job in jobs:
            click.echo(json.dumps({"kind": "schedule", **job}, default=str))
        return
    for job in jobs:
        click.echo(schedule_line(job))
    if not runs:
        click.echo(
            "no runs" + (f" of {table}" if table else "") + " yet: token-rotation rotate --table TABLE"
        )
        return
    if sys.stdout.isatty():
        from rich.console import Console

        Console(highlight=False).print(status_table(runs))
        return
    for p in runs:
        click.echo("  ".join(status_cells(p)))


# status --format prometheus: (name, help, value of a run or None to leave the run out). Gauges all: a
# textfile collector or a push gateway takes the whole set each time.
METRICS: tuple[tuple[str, str, Any], ...] = (
    ("token_rotation_rows_done", "Rows rotated so far by the run.", lambda p: p.rows_done),
    (
        "token_rotation_rows_total",
        "Rows the run rotates (its key range when it started; estimated when rows_total_exact is 0).",
        lambda p: p.rows_total,
    ),
    (
        "token_rotation_rows_total_exact",
        "1 when rows_total is a count, 0 when an estimate.",
        lambda p: int(p.rows_total_exact),
    ),
    ("token_rotation_rows_per_second", "Rows per second of working time.", lambda p: p.rows_per_second),
    (
        "token_rotation_elapsed_seconds",
        "Working time of the run over all its calls, pauses excluded.",
        lambda p: p.elapsed,
    ),
    (
        "token_rotation_eta_seconds",
        "Seconds until the run ends (the progress view's ETA; 0 when finished, absent when unknown).",
        eta_of,
    ),
    ("token_rotation_batches_done", "Batches committed by the run.", lambda p: p.batches_done),
    ("token_rotation_slices", "Key slices of the run.", lambda p: p.slices),
    ("token_rotation_workers", "Sessions working on the run's slices now.", lambda p: p.workers),
    # workers' old name, until the next release
    ("token_rotation_sessions", "Old name of token_rotation_workers.", lambda p: p.workers),
)
RUN_STATES = ("active", "paused", "finished", "cancelled")


def label_value(value: str) -> str:
    """A label value in the text exposition format: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus(runs: list[Progress]) -> str:
    """The runs in Prometheus' text exposition format (version 0.0.4): one gauge per number, labelled with
    run_id and table; the state as one 0/1 series per state; why a run waits as the reason label of
    token_rotation_throttled. Counts and times only: no token, no error text."""
    out: list[str] = []

    def family(name: str, help_text: str) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} gauge")

    def labels(p: Progress, **more: str) -> str:
        pairs = {"run_id": str(p.run_id), "table": p.table_name, **more}
        return ",".join(f'{k}="{label_value(v)}"' for k, v in pairs.items())

    for name, help_text, value_of in METRICS:
        family(name, help_text)
        for p in runs:
            value = value_of(p)
            if value is not None:
                number = value if isinstance(value, int) else round(float(value), 3)
                out.append(f"{name}{{{labels(p)}}} {number}")
    family("token_rotation_run_state", "1 for the run's state (active, paused, finished, cancelled), else 0.")
    for p in runs:
        out += [f"token_rotation_run_state{{{labels(p, state=s)}}} {int(p.state == s)}" for s in RUN_STATES]
    family(
        "token_rotation_throttled",
        "1 while the run's workers wait, with the reason (paused, replica lag, lock retry).",
    )
    for p in runs:
        if p.open and p.throttled:
            out.append(f"token_rotation_throttled{{{labels(p, reason=p.throttled)}}} 1")
    return "\n".join(out) + "\n"


def schedule_line(job: dict[str, Any]) -> str:
    """One line for a schedule: the job, its table and cron, its last firing, the run it made, its oldest
    token."""
    last = "never fired"
    if job["last_start"] is not None:
        last = f"last {job['last_start']:%Y-%m-%d %H:%M} {job['last_status'] or 'running'}"
    run = f", run {job['run_id']} {job['run_state']}" if job["run_id"] is not None else ""
    oldest = ""
    if job["oldest_token_seconds"] is not None:
        oldest = f", oldest token {format_duration(job['oldest_token_seconds'])}"
    if job["never_rotated"]:
        oldest += ", some rows never rotated"
    active = "" if job["active"] else " (inactive)"
    return f"schedule {job['jobid']}{active}: {job['table']} at '{job['schedule']}', {last}{run}{oldest}"


def _last_success(job: dict[str, Any]) -> int | None:
    if job["last_status"] in (None, "running", "starting", "sending", "connecting"):
        return None
    return int(job["last_status"] == "succeeded")


def _last_start(job: dict[str, Any]) -> float | None:
    return None if job["last_start"] is None else round(job["last_start"].timestamp(), 3)


def _oldest(job: dict[str, Any]) -> float | None:
    return None if job["oldest_token_seconds"] is None else round(float(job["oldest_token_seconds"]), 3)


# status --format prometheus, the schedules: (name, help, value of a schedule or None to leave it out)
SCHEDULE_METRICS: tuple[tuple[str, str, Any], ...] = (
    (
        "token_rotation_schedule_last_success",
        "1 when the schedule's last firing succeeded, 0 when it failed (absent before the first ends).",
        _last_success,
    ),
    ("token_rotation_schedule_last_start_seconds", "Unix time of the schedule's last firing.", _last_start),
    (
        "token_rotation_oldest_token_age_seconds",
        "Age of the table's oldest token, by the rotated-at column its schedule names.",
        _oldest,
    ),
)


def prometheus_schedules(jobs: list[dict[str, Any]]) -> str:
    """The schedules as gauges labelled with jobid and table (nothing without a schedule)."""
    if not jobs:
        return ""
    out: list[str] = []
    for name, help_text, value_of in SCHEDULE_METRICS:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for job in jobs:
            value = value_of(job)
            if value is not None:
                labels = f'jobid="{job["jobid"]}",table="{label_value(str(job["table"]))}"'
                out.append(f"{name}{{{labels}}} {value}")
    return "\n".join(out) + "\n"


def status_table(runs: list[Progress]) -> Any:
    """The `status` table as a rich renderable (for a terminal and for --watch)."""
    from rich.markup import escape
    from rich.table import Table

    grid = Table(*STATUS_HEADERS)
    for p in runs:
        grid.add_row(*(escape(cell) for cell in status_cells(p)))  # another role's reason is no markup
    return grid


def watch(read: Any, interval: float = 1.0) -> None:
    """`status --watch`: reads the runs (`read()`) and redraws the table every `interval` seconds until
    Ctrl-C, in place on a terminal (rich Live), as a new timestamped block otherwise. Ctrl-C ends it
    normally: the caller exits 0."""
    if sys.stdout.isatty():
        from rich.live import Live

        try:
            with Live(status_table(read()), auto_refresh=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(status_table(read()), refresh=True)
        except KeyboardInterrupt:
            return
    try:
        while True:
            runs = read()
            click.echo(f"{datetime.now():%H:%M:%S} {len(runs)} run(s)")
            for p in runs:
                click.echo("  ".join(status_cells(p)))
            click.echo("")
            time.sleep(interval)
    except KeyboardInterrupt:
        return


def verify(run_id: int, checks: list[dict[str, Any]], as_json: bool) -> None:
    """The `verify` output: one line (or JSON object) per check of token_rotation.verify."""
    for check in checks:
        detail = redact(check["detail"] or "")
        if as_json:
            click.echo(
                json.dumps(
                    {"run_id": run_id, "check": check["check_name"], "ok": check["ok"], "detail": detail}
                )
            )
        else:
            click.echo(f"{'ok  ' if check['ok'] else 'FAIL'}  {check['check_name']}: {detail}")
    if not as_json and all(check["ok"] for check in checks):
        click.echo(f"run {run_id}: all {len(checks)} checks passed")
