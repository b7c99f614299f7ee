"""The chunk planner: splits a window of service dates into chunks sized from real row counts.

A chunk is a contiguous range of dates. The plan covers the window exactly, without gaps or overlaps;
a chunk spans at most ``chunk_days`` days and holds at most ``max_chunk_rows`` staged rows, except a
single day heavier than that, which becomes a chunk of its own (a conflict date cannot be split).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date, timedelta


@dataclasses.dataclass(frozen=True)
class Chunk:
    chunk_id: int
    start: date
    end: date
    estimated_rows: int

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def as_item(self) -> dict[str, object]:
        """The Map item the state machine fans out (small: the whole list counts toward 256 KB)."""
        return {"chunk_id": self.chunk_id, "chunk_start": self.start.isoformat(),
                "chunk_end": self.end.isoformat()}


def days_between(start: date, end: date) -> list[date]:
    """Every date of the inclusive range."""
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def plan_chunks(window_start: date, window_end: date, rows_by_day: Mapping[date, int], *,
                chunk_days: int, max_chunk_rows: int, first_chunk_id: int = 1) -> list[Chunk]:
    """Greedy plan: extend the current chunk by a day while both limits hold, else start a new one."""
    if window_end < window_start:
        raise ValueError(f"window end {window_end} is before its start {window_start}")
    if chunk_days < 1 or max_chunk_rows < 1:
        raise ValueError("chunk_days and max_chunk_rows must be at least 1")

    chunks: list[Chunk] = []
    start: date | None = None
    rows = 0
    for day in days_between(window_start, window_end):
        day_rows = max(0, int(rows_by_day.get(day, 0)))
        if start is not None and ((day - start).days >= chunk_days or rows + day_rows > max_chunk_rows):
            chunks.append(Chunk(first_chunk_id + len(chunks), start, day - timedelta(days=1), rows))
            start = None
        if start is None:
            start, rows = day, 0
        rows += day_rows
    assert start is not None
    chunks.append(Chunk(first_chunk_id + len(chunks), start, window_end, rows))
    return chunks
