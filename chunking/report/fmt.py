"""How the report writes numbers, dates, times and durations, and how wide a label is estimated to be."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import Any

# Advances in em of DejaVu Sans (the page's first font), a little rounded up: digits, capitals, narrow
# punctuation and the rest; bold is about 10% wider.
_NARROW = set(" .,:;'!|il-()[]/")
_WIDE = set("mwMW@%…·✕")
BOLD_FACTOR = 1.1


def num(value: int | float | None) -> str:
    return "-" if value is None else f"{int(value):,}"


def rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def day(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def day_range(start: date, end: date) -> str:
    return day(start) if start == end else f"{day(start)}..{day(end)}"


def clock(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: float) -> str:
    """A duration precise enough for chunks that take milliseconds: 7 ms, 0.35s, 12.4s, 4m30s, 6h05m."""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 10:
        return f"{value:.2f}s"
    return duration(value)


def duration(value: float) -> str:
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def between(start: datetime, end: datetime | None) -> str:
    return "-" if end is None else seconds((end - start).total_seconds())


def offset_label(value: float, step: float) -> str:
    """A tick's offset from the run's start, as precise as the tick step: +0.35s, +12s, +4m30s, +6h05m."""
    decimals = 2 if step < 0.1 else 1 if step < 1 else 0
    hours, rest = divmod(round(value, decimals), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"+{int(hours)}h{int(minutes):02d}m" + (f"{secs:02.0f}s" if step < 60 else "")
    if minutes:
        return f"+{int(minutes)}m" + (f"{secs:0{3 + decimals if decimals else 2}.{decimals}f}s" if step < 60 else "")
    return "0" if value == 0 else f"+{secs:.{decimals}f}s"


def nice_step(raw: float) -> int:
    magnitude = 10 ** max(0, math.floor(math.log10(max(raw, 1))))
    return int(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))


def natural(text: str) -> list[Any]:
    """Sort key: chunk-worker-2 before chunk-worker-10."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text)]


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shorten(text: str, limit: int) -> str:
    """Keep the end (a worker's number, an execution's stamp), drop the start."""
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def text_px(text: str, size: float, *, bold: bool = False) -> float:
    """A generous estimate of a label's width in the page's sans-serif font."""
    ems = sum(0.36 if c in _NARROW else 0.92 if c in _WIDE else 0.74 if c.isupper() else 0.64 if c.isdigit()
              else 0.6 for c in text)
    return ems * size * (BOLD_FACTOR if bold else 1.0)


def darker(color: str) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"#{int(r * 0.75):02x}{int(g * 0.75):02x}{int(b * 0.75):02x}"
