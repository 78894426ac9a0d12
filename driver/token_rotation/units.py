"""Reading and writing the quantities the command line deals in: sizes ("100MB"), durations ("1.5s",
"200ms"), row counts. Pure functions, no I/O."""

from __future__ import annotations

import math
import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|h|d)?\s*$", re.IGNORECASE)
_DURATION_FACTORS = {
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "ms": 0.001,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}


def parse_size(text: str) -> int:
    """Bytes in a size such as 100MB, 1.5GB, 512kB, 100MiB or 4096 (units are powers of 1024, as in
    PostgreSQL's own settings). Raises ValueError for anything else."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (examples: 100MB, 1GB, 4096)")
    unit = (m.group(2) or "").lower().replace("i", "")
    factor = _SIZE_FACTORS[unit[:1] if unit not in ("b", "") else unit]
    return int(float(m.group(1)) * factor)


def parse_duration(text: str) -> float:
    """Seconds in a duration such as 2, 1.5s, 200ms, 5min, 1h or 90d. Raises ValueError for anything else."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (examples: 0.5, 200ms, 2s, 5min, 2h, 90d)")
    return float(m.group(1)) * _DURATION_FACTORS[(m.group(2) or "").lower()]


def format_duration(seconds: float | None) -> str:
    """A duration for people: 42ms, 0.4s, 42s, 3m05s, 2h07m; "-" when unknown."""
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return "-"
    if seconds < 0.1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def format_count(n: float | None) -> str:
    """A row count or rate with thousands separators; "-" when unknown."""
    if n is None:
        return "-"
    return f"{int(round(n)):,}"


def format_size(n: float | None) -> str:
    """Bytes for people, in powers of 1024 like pg_size_pretty: 512 bytes, 86 MB, 1.2 GB."""
    if n is None:
        return "-"
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            if unit == "bytes":
                return f"{sign}{int(n)} bytes"
            return f"{sign}{n:.0f} {unit}" if n >= 10 else f"{sign}{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
