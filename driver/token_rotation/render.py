"""Showing a run's progress: a live rich bar on a terminal, plain lines at a steady interval in a pipe or a
log, or JSON lines (`--json`) for programs. The three take the same calls; none prints a token or a password
(what they show is counts and times, and the server's messages pass through errors.redact)."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import IO, Any, Protocol

from token_rotation.progress import Progress
from token_rotation.units import format_count, format_duration


def progress_fields(p: Progress, eta_seconds: float | None) -> dict[str, Any]:
    """The numbers every renderer shows, as JSON-friendly values."""
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
        "active_workers": p.active_workers,
        "workers": p.workers,
        "throttled": p.throttled,
    }


def progress_line(p: Progress, eta_seconds: float | None) -> str:
    """One line for people: rows done/total, percent, rows/s, elapsed, ETA, and why it waits."""
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
    return line


def summary_line(p: Progress) -> str:
    """The one-line summary a finished run ends with."""
    return (
        f"rotated {format_count(p.rows_done)} rows of {p.table_name} in {format_duration(p.elapsed)} "
        f"({format_count(p.rows_per_second)} rows/s), run {p.run_id}"
    )


class Renderer(Protocol):
    def started(self, info: dict[str, Any]) -> None: ...
    def progress(self, p: Progress, eta_seconds: float | None) -> None: ...
    def finished(self, p: Progress, extra: dict[str, Any]) -> None: ...
    def interrupted(self, p: Progress | None, resume: str) -> None: ...
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

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        self.out.write(json.dumps({"event": event, **data}, default=str) + "\n")
        self.out.flush()

    def started(self, info: dict[str, Any]) -> None:
        self._summary.update(info)
        self._emit("started", info)

    def progress(self, p: Progress, eta_seconds: float | None) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._emit("progress", progress_fields(p, eta_seconds))

    def finished(self, p: Progress, extra: dict[str, Any]) -> None:
        data = {**progress_fields(p, 0.0), **extra}
        self._summary.update(data, outcome="finished" if p.state == "finished" else "stopped", exit_code=0)
        self._emit("finished", data)

    def interrupted(self, p: Progress | None, resume: str) -> None:
        data = {**(progress_fields(p, None) if p else {}), "resume": resume}
        self._summary.update(data, outcome="interrupted", exit_code=130)
        self._emit("interrupted", data)

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

    def started(self, info: dict[str, Any]) -> None:
        self._line(info["message"])

    def progress(self, p: Progress, eta_seconds: float | None) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._line(progress_line(p, eta_seconds))

    def finished(self, p: Progress, extra: dict[str, Any]) -> None:
        self._line(progress_line(p, 0.0 if p.state == "finished" else None))
        self._line(summary_line(p) if p.state == "finished" else extra.get("message", ""))

    def interrupted(self, p: Progress | None, resume: str) -> None:
        if p is not None:
            self._line(progress_line(p, None))
        self._line(interrupted_line(p, resume))

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

    def started(self, info: dict[str, Any]) -> None:
        self._print(info["message"])
        self._ensure().start()

    def progress(self, p: Progress, eta_seconds: float | None) -> None:
        from rich.markup import escape

        bar = self._ensure()
        total = format_count(p.rows_total) if p.rows_total_exact else f"~{format_count(p.rows_total)}"
        fields: dict[str, Any] = {
            "rows": f"{format_count(p.rows_done)}/{total}",
            "percent": f"{p.percent:.1f}%",
            "rate": format_count(p.rows_per_second),
            "elapsed": format_duration(p.elapsed),
            "eta": format_duration(eta_seconds),
            "note": escape(
                "paused" if p.state == "paused" else (f"throttled: {p.throttled}" if p.throttled else "")
            ),
        }
        if self.task is None:
            self.task = bar.add_task(escape(p.table_name), total=max(p.rows_total, 1), **fields)
        bar.update(self.task, completed=min(p.rows_done, max(p.rows_total, 1)), **fields)
        bar.refresh()

    def finished(self, p: Progress, extra: dict[str, Any]) -> None:
        self.progress(p, 0.0 if p.state == "finished" else None)
        self._ensure().stop()
        self._print(summary_line(p) if p.state == "finished" else extra.get("message", ""))

    def interrupted(self, p: Progress | None, resume: str) -> None:
        if p is not None:
            self.progress(p, None)
        self._ensure().stop()
        self._print(interrupted_line(p, resume))

    def error(self, message: str, exit_code: int) -> None:
        if self._bar is not None:
            self._bar.stop()

    def note(self, text: str, data: dict[str, Any] | None = None) -> None:
        self._print(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
