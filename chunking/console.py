"""Terminal output: aligned tables, a progress bar on a terminal and plain lines elsewhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any, TextIO


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return duration(value.total_seconds())
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, max_width: int = 60) -> str:
    """A plain aligned table; numbers right-aligned, long cells cut at ``max_width``."""
    text = [[cell(v) for v in row] for row in rows]
    text = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in text]
    widths = [max([len(h)] + [len(r[i]) for r in text]) for i, h in enumerate(headers)]
    numeric = [all(_numeric(r[i]) for r in text) and bool(text) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True))

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in text]
    return "\n".join(s.rstrip() for s in out)


def _numeric(text: str) -> bool:
    return text == "-" or text.replace(",", "").replace(".", "").replace("s", "").isdigit()


class Progress:
    """Chunk progress: a redrawn bar on a terminal, one line per change otherwise."""

    def __init__(self, stream: TextIO | None = None, *, label: str = "chunks") -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.label = label
        self.started = time.monotonic()
        self._last: tuple[Any, ...] | None = None

    def update(self, done: int, total: int, running: int, failed: int, retrying: int = 0,
               phase: str = "") -> None:
        state = (done, total, running, failed, retrying, phase)
        elapsed = duration(time.monotonic() - self.started)
        if self.tty:
            width = 30
            filled = int(width * done / total) if total else 0
            bar = "#" * filled + "." * (width - filled)
            extra = f" {running} running" + (f", {retrying} retrying" if retrying else "") + \
                (f", {failed} failed" if failed else "")
            text = f"\r[{bar}] {done}/{total} {self.label},{extra}  {elapsed}" if total else f"\r{phase}…  {elapsed}"
            self.stream.write(text.ljust(90))
            self.stream.flush()
        elif state != self._last:
            if total:
                self.stream.write(f"progress: {done}/{total} {self.label} done, {running} running, "
                                  f"{retrying} retrying, {failed} failed ({elapsed})\n")
            elif phase:
                self.stream.write(f"progress: {phase} ({elapsed})\n")
            self.stream.flush()
        self._last = state

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
