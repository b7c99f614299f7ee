"""The chunk planner: splits a window of service dates into chunks sized from real row counts.

A chunk is a range of dates. The plan covers the window exactly, without gaps or overlaps; a chunk holds at
most ``chunk_days`` days and at most a cap of staged rows, except a single day heavier than that, which becomes
a chunk of its own (a conflict date cannot be split). A stale run plans only the days it selected: a chunk then
owns the selected days of its range (``Chunk.owned``), and days left out between them are skipped, not chunk
boundaries, so scattered days still fill as many chunks as run at once.

The cap is either fixed (``max_chunk_rows``) or adaptive: the rows a chunk can process in a target
duration at the throughput measured by earlier runs (a documented default without history), never more
than a quarter of the worker's timeout. An adaptive plan also splits the window into at least as many
chunks as run at once, balanced by rows, so the concurrency is used.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import date, timedelta
from typing import Any

# With no history, assume this many staged rows per second per chunk: about a third of what the benchmark measured
# on a 2-core machine (medians of 255k-330k owner rows/s per chunk, one or two chunks at once; 275k-390k/s on a
# rerun over unchanged data; docs/benchmarks.md), so a first plan errs towards smaller chunks.
DEFAULT_ROWS_PER_SECOND = 100_000.0
# What a chunk costs whatever its size: queue, invocation, connection, ledger. 70-80 ms through the local
# emulator (docs/benchmarks.md, 1-day chunks); about doubled for the queue and invocation latency of AWS.
CHUNK_OVERHEAD_MS = 150
# A rate measured on fewer rows than this is mostly overhead: not used to size chunks.
MIN_ROWS_MEASURED = 1_000
# A chunk that ran out of time proves the throughput was at most rows/elapsed; plan below it, with margin.
TIMEOUT_SAFETY = 0.5

# Step Functions limits for one Standard execution with an inline Map (AWS quotas).
MAX_HISTORY_EVENTS = 25_000
EVENTS_PER_CHUNK = 10  # 8 for a chunk that succeeds (measured), 10 for one whose failure is caught
EVENTS_FIXED = 200  # the other states, with room for their retries
MAX_PAYLOAD_BYTES = 256 * 1024
STATE_OVERHEAD_BYTES = 4_096  # the run context and the step outputs carried beside the chunk list


@dataclasses.dataclass(frozen=True)
class Chunk:
    chunk_id: int
    start: date
    end: date
    estimated_rows: int
    estimated_ms: int | None = None
    # The days the chunk computes when they are not every day of its range (a stale run's selected days, first and
    # last at its ends: etl.chunks.owned_days, schema 15); None: every day of it.
    owned: tuple[date, ...] | None = None

    @property
    def days(self) -> int:
        """How many days the chunk computes."""
        return len(self.owned) if self.owned is not None else (self.end - self.start).days + 1

    def computed_days(self) -> list[date]:
        """The days the chunk computes, in order."""
        return computed_days(self.start, self.end, self.owned)

    def as_item(self) -> dict[str, object]:
        """The Map item the state machine fans out (small: the whole list counts toward 256 KB)."""
        return {"chunk_id": self.chunk_id, "chunk_start": self.start.isoformat(),
                "chunk_end": self.end.isoformat()}


@dataclasses.dataclass(frozen=True)
class Throughput:
    rows_per_second: float
    source: str  # "default", or what it was measured on


@dataclasses.dataclass(frozen=True)
class Sizing:
    """How a plan is sized; recorded on the run."""

    mode: str  # "fixed" or "adaptive"
    chunk_days: int
    max_chunk_rows: int
    min_chunks: int
    rows_per_second: float
    throughput_source: str
    target_chunk_seconds: float

    def estimate_ms(self, rows: int) -> int:
        return CHUNK_OVERHEAD_MS + int(rows / self.rows_per_second * 1000)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Budget:
    """How a plan sits against the limits of one execution."""

    chunks: int
    history_events: int
    map_input_bytes: int

    @property
    def max_chunks(self) -> int:
        return min((MAX_HISTORY_EVENTS - EVENTS_FIXED) // EVENTS_PER_CHUNK,
                   (MAX_PAYLOAD_BYTES - STATE_OVERHEAD_BYTES) // max(1, self.map_input_bytes // max(1, self.chunks)))

    @property
    def fits(self) -> bool:
        return self.history_events <= MAX_HISTORY_EVENTS and \
            self.map_input_bytes + STATE_OVERHEAD_BYTES <= MAX_PAYLOAD_BYTES

    def describe(self) -> str:
        return (f"{self.chunks} chunks: ~{self.history_events:,} of {MAX_HISTORY_EVENTS:,} history events "
                f"({self.history_events / MAX_HISTORY_EVENTS:.1%}), Map input {self.map_input_bytes:,} of "
                f"{MAX_PAYLOAD_BYTES:,} bytes ({(self.map_input_bytes + STATE_OVERHEAD_BYTES) / MAX_PAYLOAD_BYTES:.1%} "
                "with the run's state)")


class PlanTooLarge(ValueError):
    """The window needs more chunks than one execution can carry."""


def days_between(start: date, end: date) -> list[date]:
    """Every date of the inclusive range."""
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def computed_days(start: date, end: date, owned: Sequence[date] | None) -> list[date]:
    """The days a chunk of ``[start, end]`` computes: the days it owns (a stale run's, ``etl.chunks.owned_days``),
    or every day of its range. The one rule for the planner's, the ledger's and the report's chunks."""
    return list(owned) if owned is not None else days_between(start, end)


def plan_chunks(window_start: date, window_end: date, rows_by_day: Mapping[date, int], *,
                chunk_days: int, max_chunk_rows: int, first_chunk_id: int = 1,
                selected: AbstractSet[date] | None = None) -> list[Chunk]:
    """Greedy plan: extend the current chunk by a day while both limits hold, else start a new one.
    With ``selected`` (a stale run), only those days are planned: the days left out are skipped, and each chunk
    owns the selected days from its first to its last (``Chunk.owned``)."""
    if window_end < window_start:
        raise ValueError(f"window end {window_end} is before its start {window_start}")
    if chunk_days < 1 or max_chunk_rows < 1:
        raise ValueError("chunk_days and max_chunk_rows must be at least 1")

    chunks: list[Chunk] = []
    days: list[date] = []
    rows = 0

    def close() -> None:
        owned = tuple(days) if selected is not None else None
        chunks.append(Chunk(first_chunk_id + len(chunks), days[0], days[-1], rows, owned=owned))

    for day in days_between(window_start, window_end):
        if selected is not None and day not in selected:
            continue
        day_rows = max(0, int(rows_by_day.get(day, 0)))
        if days and (len(days) >= chunk_days or rows + day_rows > max_chunk_rows):
            close()
            days, rows = [], 0
        days.append(day)
        rows += day_rows
    if days:
        close()
    return chunks


def measured_throughput(history: Iterable[Mapping[str, Any]], default: float = DEFAULT_ROWS_PER_SECOND) -> Throughput:
    """Rows per second for sizing: the median of recent succeeded chunks, capped below any rate that ran
    out of time; the default when nothing usable was measured."""
    succeeded = [r["rows"] / (r["elapsed_ms"] / 1000) for r in history
                 if r["kind"] == "succeeded" and r["rows"] >= MIN_ROWS_MEASURED and r["elapsed_ms"] > 0]
    timed_out = [r["rows"] / (r["elapsed_ms"] / 1000) for r in history
                 if r["kind"] == "timed_out" and r["rows"] >= MIN_ROWS_MEASURED and r["elapsed_ms"] > 0]
    rate, source = default, "default (no history)"
    if succeeded:
        rate, source = statistics.median(succeeded), f"median of {len(succeeded)} recent chunks"
    if timed_out and min(timed_out) * TIMEOUT_SAFETY < rate:
        rate = min(timed_out) * TIMEOUT_SAFETY
        source += f", capped by {len(timed_out)} timed-out attempt{'s' if len(timed_out) > 1 else ''}"
    return Throughput(max(rate, 1.0), source)


def fixed_sizing(chunk_days: int, max_chunk_rows: int) -> Sizing:
    """Caps given outright (no throughput involved): what ``--max-chunk-rows`` asks for."""
    return Sizing("fixed", chunk_days, max_chunk_rows, 1, DEFAULT_ROWS_PER_SECOND, "default (fixed caps)", 0.0)


def adaptive_sizing(throughput: Throughput, *, chunk_days: int, target_chunk_seconds: float,
                    worker_timeout_s: int, concurrency: int, fixed_rows: int | None = None) -> Sizing:
    """The plan's caps: fixed rows when given, else what fits the target duration (at most a quarter of
    the worker's timeout) at the measured throughput."""
    target = min(target_chunk_seconds, worker_timeout_s / 4)
    if fixed_rows:
        return Sizing("fixed", chunk_days, fixed_rows, 1, throughput.rows_per_second, throughput.source, target)
    budget_ms = max(1.0, target * 1000 - CHUNK_OVERHEAD_MS)
    cap = max(1, int(throughput.rows_per_second * budget_ms / 1000))
    return Sizing("adaptive", chunk_days, cap, max(1, concurrency), throughput.rows_per_second, throughput.source,
                  target)


def plan_window(window_start: date, window_end: date, rows_by_day: Mapping[date, int], sizing: Sizing,
                first_chunk_id: int = 1, selected: AbstractSet[date] | None = None) -> list[Chunk]:
    """Plan a window with a sizing: fixed caps as given; adaptive caps balanced so that there are at least
    ``min_chunks`` chunks (when the window has that many days), as even in rows as the order of the days allows.
    ``selected``: plan only these days (a stale run), each chunk owning a run of them in date order, whatever
    lies between; none, no chunks."""
    cap = sizing.max_chunk_rows
    wanted = 1
    if selected is not None and not any(window_start <= d <= window_end for d in selected):
        return []
    if sizing.mode == "adaptive":
        days = [d for d in days_between(window_start, window_end) if selected is None or d in selected]
        total = sum(max(0, int(rows_by_day.get(d, 0))) for d in days)
        loaded_days = sum(1 for d in days if rows_by_day.get(d, 0) > 0)
        needed = max(sizing.min_chunks, math.ceil(total / cap) if total else 1,
                     math.ceil(len(days) / sizing.chunk_days))
        # a multiple of the concurrency, so the last wave of chunks is not one chunk running alone
        wanted = min(max(1, loaded_days), math.ceil(needed / sizing.min_chunks) * sizing.min_chunks)
        wanted = max(wanted, min(sizing.min_chunks, len(days)))
        cap = _balanced_cap(window_start, window_end, rows_by_day, sizing.chunk_days, wanted, cap, selected)
    chunks = plan_chunks(window_start, window_end, rows_by_day, chunk_days=sizing.chunk_days, max_chunk_rows=cap,
                         selected=selected)
    while len(chunks) < wanted:  # greedy packing can leave fewer chunks than the concurrency: halve the heaviest
        for heaviest in sorted(chunks, key=lambda c: c.estimated_rows, reverse=True):  # that has two loaded halves
            halves = split_chunk(heaviest, rows_by_day, first_chunk_id=heaviest.chunk_id)
            if len(halves) == 2 and min(h.estimated_rows for h in halves) > 0:
                at = chunks.index(heaviest)
                chunks[at:at + 1] = halves
                break
        else:
            break  # every chunk's rows sit on one day: nothing to gain
    return [dataclasses.replace(c, chunk_id=first_chunk_id + i, estimated_ms=sizing.estimate_ms(c.estimated_rows))
            for i, c in enumerate(chunks)]


def _balanced_cap(start: date, end: date, rows_by_day: Mapping[date, int], chunk_days: int, wanted: int,
                  ceiling: int, selected: AbstractSet[date] | None = None) -> int:
    """The smallest row cap (at most ``ceiling``) whose greedy plan has no more than ``wanted`` chunks."""
    low, high = 1, max(1, ceiling)
    if len(plan_chunks(start, end, rows_by_day, chunk_days=chunk_days, max_chunk_rows=high,
                       selected=selected)) > wanted:
        return high  # the day limit or the ceiling already forces more chunks: nothing to balance
    while low < high:
        middle = (low + high) // 2
        if len(plan_chunks(start, end, rows_by_day, chunk_days=chunk_days, max_chunk_rows=middle,
                           selected=selected)) <= wanted:
            high = middle
        else:
            low = middle + 1
    return high


def split_chunk(chunk: Chunk, rows_by_day: Mapping[date, int], first_chunk_id: int) -> list[Chunk]:
    """A chunk in two, cut at the day that best halves its rows (a chunk that ran out of time is redriven
    in pieces); a single day cannot be cut. A chunk that owns only some days of its range is cut between them."""
    days = chunk.computed_days()
    if len(days) < 2:
        return [chunk]
    rows = [max(0, int(rows_by_day.get(d, 0))) for d in days]
    total = sum(rows)
    prefix = [sum(rows[:i]) for i in range(1, len(days))]
    cut = min(range(1, len(days)), key=lambda i: (abs(2 * prefix[i - 1] - total), abs(2 * i - len(days))))
    first, second = (tuple(days[:cut]), tuple(days[cut:])) if chunk.owned is not None else (None, None)
    return [Chunk(first_chunk_id, days[0], days[cut - 1], prefix[cut - 1], owned=first),
            Chunk(first_chunk_id + 1, days[cut], days[-1], total - prefix[cut - 1], owned=second)]


def budget(chunks: Sequence[Chunk]) -> Budget:
    """What the plan costs one execution: history events and the Map's input size."""
    items = json.dumps([c.as_item() for c in chunks], separators=(",", ":"))
    return Budget(len(chunks), EVENTS_FIXED + EVENTS_PER_CHUNK * len(chunks), len(items.encode()))


def check_budget(chunks: Sequence[Chunk]) -> Budget:
    """Refuse a plan one execution cannot carry, saying by how much and what to do."""
    used = budget(chunks)
    if not used.fits:
        raise PlanTooLarge(f"the window needs {used.describe()}: over what one execution allows; "
                           f"split it into windows of at most {used.max_chunks} chunks, or raise --chunk-days")
    return used
