"""Change-aware runs: per-day fingerprints of the source, which days are stale, and what a stale run takes.

Every staging records, in the snapshot it stages from, a fingerprint of each day of ``analytics.visits`` it reads
(row count and sum of 64-bit row hashes, cancelled visits included). A chunk that commits marks its days computed
from that staging (``etl.day_state``). A day is STALE when a day its result depends on has another fingerprint
now than in that snapshot; the dependency argument is in docs/freshness.md. Everything is set-based SQL in
``sql/freshness/``."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Literal, TypeVar

from chunking import db, ledger, tasks
from chunking.db import Connection
from chunking.errors import TransientError
from chunking.planner import Chunk, Sizing, plan_window
from chunking.wording import counted

State = Literal["FRESH", "STALE", "NEVER"]
Reason = Literal["CHANGED", "DEPENDENT", "NEVER"]
SYMBOLS = {"FRESH": ".", "STALE": "S", "NEVER": "-"}
SNAPSHOT_ATTEMPTS = 5
SERIALIZATION_FAILURE = "40001"
T = TypeVar("T")
Day = date  # the field below is named ``date``, as in the JSON


@dataclasses.dataclass(frozen=True)
class DayFreshness:
    date: Day
    state: State
    run_id: int | None  # the run that last computed the day
    computed_at: datetime | None
    reason: Reason | None = None  # why a day is not FRESH: its own source changed, a day it depends on, never run
    cause_day: Day | None = None  # the first day it depends on whose source changed

    def as_json(self) -> dict[str, Any]:
        return {"date": self.date.isoformat(), "state": self.state, "run_id": self.run_id,
                "computed_at": self.computed_at.isoformat() if self.computed_at else None,
                "reason": self.reason, "cause_day": self.cause_day.isoformat() if self.cause_day else None}

    def why(self) -> str:
        return explain(self.reason, self.cause_day)


def explain(reason: str | None, cause_day: Day | None) -> str:
    """Why a day is (or was) recomputed, in words: what the run report and the CLI say."""
    if reason == "NEVER":
        return "never computed"
    if reason == "CHANGED":
        return "its visits changed"
    if cause_day is None:
        return "a visit of one of its conflicts was deleted"
    return f"depends on {cause_day}, whose visits changed"


# --- recording (staging and chunks) -----------------------------------------------------------------------

def staging_days(days: Iterable[date]) -> list[date]:
    """The days a staging for these owner days reads: each day and its partner days (tasks.PARTNER_DAYS)."""
    return sorted({d + timedelta(days=k) for d in days for k in range(tasks.PARTNER_DAYS + 1)})


def staging_cutoffs(days: Iterable[date], last_ends: Mapping[date, datetime] | None = None,
                    ) -> list[tuple[date, datetime | None]]:
    """What a staging for these owner days reads of each day, in date order: ``(day, None)`` for all of an owner
    day's visits, ``(day, until)`` for a partner day's visits starting at or before ``until``: the latest end of the
    owners of the days before it plus 2 h (``last_ends``, per owner day: ``tasks.partner_cutoff``), never past the
    last owner day before it plus ``tasks.PARTNER_REACH``."""
    owners = set(days)
    cutoffs: list[tuple[date, datetime | None]] = []
    for day in staging_days(owners):
        if day in owners:
            cutoffs.append((day, None))
            continue
        before = [d for d in owners if day - timedelta(days=tasks.PARTNER_DAYS) <= d < day]
        cutoffs.append((day, tasks.partner_cutoff(before, last_ends or {})))
    return cutoffs


def begin_snapshot(conn: Connection) -> None:
    """Make the transaction about to begin REPEATABLE READ (staged rows and fingerprints share its snapshot): the
    ``first`` statement of staging's unit of work (``db.write(conn, first=begin_snapshot)``)."""
    db.execute(conn, "freshness/begin_snapshot")


def in_snapshot(work: Callable[[], T]) -> T:
    """Run a unit of work whose transaction is REPEATABLE READ (staging), again when it fails with a serialization
    error: a heartbeat that updates the run row between the snapshot and the row lock makes the lock fail (SQLSTATE
    40001) rather than wait. After the last attempt, a :class:`TransientError` (then the step's Retry)."""
    for attempt in range(1, SNAPSHOT_ATTEMPTS + 1):
        try:
            return work()
        except TransientError as exc:
            if exc.code != SERIALIZATION_FAILURE:
                raise
            if attempt == SNAPSHOT_ATTEMPTS:
                raise TransientError(f"staging lost {attempt} snapshots to concurrent updates of the run row: "
                                     f"{exc}", code=exc.code) from exc
            time.sleep(0.02 * attempt)
    raise AssertionError("unreachable")


def read_fingerprints(conn: Connection, days: Sequence[date]) -> list[dict[str, Any]]:
    """The fingerprints, in the snapshot of ``conn``'s transaction, of every day a staging for these owner days
    reads (their partner days, and where the visits of their ACTIVE conflicts lie), part by part, and the far
    visits of those conflicts. A SELECT, which PostgreSQL may run in parallel (never a statement that writes: the
    INSERT form took 2.3-2.5 s at 1M visits, serially). JIT off for the rest of the transaction: it compiled this
    statement for 0.2 s, more than it then ran."""
    db.set_local(conn, jit="off")
    return db.fetch_all(conn, "freshness/read_fingerprints", read_parameters(days))


def read_parameters(days: Sequence[date]) -> dict[str, Any]:
    """``read_fingerprints.sql``'s parameters for a staging of these owner days: the days it stages, and their
    first and last (the range its per-part count scans)."""
    stage_days = staging_days(days)
    return {"days": list(days), "stage_days": stage_days, "stage_first": stage_days[0] if stage_days else None,
            "stage_last": stage_days[-1] if stage_days else None, "partner_days": tasks.PARTNER_DAYS}


@contextlib.contextmanager
def fingerprints_beside(conn: Connection, days: Sequence[date],
                        reader: Callable[[], Connection] | None) -> Iterator[Callable[[], list[dict[str, Any]] | None]]:
    """Inside the staging transaction: read its fingerprints (:func:`read_fingerprints`) on a second connection
    (``reader()``), in the snapshot this transaction exports, on a thread, while this one loads, indexes and
    analyses the staging (a serial INSERT, then the index builds): one core each, instead of one after the other
    (0.2 s of a 650k-visit staging).
    Yields a function that waits for the rows (raising what the read raised); on the way out the read has always
    ended, so the second connection is idle again. Without a ``reader`` it yields one that returns None: the rows
    are then read in this transaction, after the load (:func:`record_fingerprints`)."""
    if reader is None:
        yield lambda: None
        return
    snapshot = db.fetch_one(conn, "freshness/export_snapshot")
    assert snapshot is not None
    peer = reader()
    db.set_budget(peer, db.budget_of(conn))
    outcome: dict[str, Any] = {}

    def read() -> None:
        try:
            with db.read(peer, imported=snapshot["snapshot_id"]):
                # serial: one core for this read, one for the load beside it (parallel workers took the load's
                # core: 0.1 s more of a 650k-visit staging)
                db.set_local(peer, max_parallel_workers_per_gather="0")
                outcome["rows"] = read_fingerprints(peer, days)
        except BaseException as exc:  # noqa: BLE001 - handed to the staging's thread, which raises it
            outcome["error"] = exc

    thread = threading.Thread(target=read, name="staging-fingerprints", daemon=True)
    thread.start()

    def rows() -> list[dict[str, Any]]:
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        read_rows: list[dict[str, Any]] = outcome["rows"]
        return read_rows

    try:
        yield rows
    finally:
        thread.join()


def record_fingerprints(conn: Connection, run_id: int, days: Sequence[date],
                        rows: list[dict[str, Any]] | None = None) -> None:
    """Inside the staging transaction: record the fingerprints of every day it reads for these owner days, the
    far visits of their ACTIVE conflicts, each owner day's reach and what its late caregivers reach of the next two
    days (``rows``, as :func:`read_fingerprints` returns them, read in this transaction's snapshot; when None, read
    now, in this transaction). Commits nothing."""
    if rows is None:
        rows = read_fingerprints(conn, days)
    parts = [r for r in rows if r["part"] is not None]
    far = [r for r in rows if r["far_visit_id"] is not None]
    reach = [r for r in rows if r["reach"] is not None]
    late = [r for r in rows if r["dep_day"] is not None]
    db.execute(conn, "freshness/record_fingerprints", {
        "run_id": run_id, "days": [r["day"] for r in parts], "parts": [r["part"] for r in parts],
        "visits": [r["visits"] for r in parts], "hashes": [r["hash"] for r in parts],
        "far_days": [r["day"] for r in far], "far_visit_ids": [r["far_visit_id"] for r in far],
        "reach_days": [r["day"] for r in reach], "reaches": [r["reach"] for r in reach],
        "late_days": [r["day"] for r in late], "late_dep_days": [r["dep_day"] for r in late],
        "late_visits": [r["visits"] for r in late], "late_hashes": [r["hash"] for r in late]})


def mark_computed(conn: Connection, run_id: int, chunk_id: int, chunk_start: date, chunk_end: date,
                  days: Sequence[date] | None = None) -> None:
    """Inside a chunk's transaction: its days (``days``, or every day of its range) are now computed from the run's
    current staging. Commits nothing."""
    db.execute(conn, "freshness/mark_days_computed",
               {"run_id": run_id, "chunk_id": chunk_id, "chunk_start": chunk_start, "chunk_end": chunk_end,
                "days": list(days) if days is not None else None})


# --- asking -------------------------------------------------------------------------------------------------

def day_states(conn: Connection, start: date, end: date) -> list[DayFreshness]:
    """FRESH, STALE or NEVER for every day of ``[start, end]``, with the run that last computed it (read-only)."""
    with db.read(conn):
        rows = db.fetch_all(conn, "freshness/day_states",
                            {"range_start": start, "range_end": end, "partner_days": tasks.PARTNER_DAYS})
    return [DayFreshness(r["day"], r["state"], r["run_id"], r["computed_at"], r["reason"], r["cause_day"])
            for r in rows]


def as_json(days: Sequence[DayFreshness]) -> dict[str, Any]:
    """``{"days": [{"date", "state", "run_id", "computed_at", "reason", "cause_day"}, ...]}``."""
    return {"days": [d.as_json() for d in days]}


def calendar(days: Sequence[DayFreshness], *, max_listed: int = 20) -> str:
    """A compact calendar, one line per week (``.`` FRESH, ``S`` STALE, ``-`` NEVER), then the days not FRESH."""
    if not days:
        return "no days"
    counts = Counter(d.state for d in days)
    lines = [f"freshness {days[0].date}..{days[-1].date}: " + ", ".join(
        f"{counts[s]} {s}" for s in ("FRESH", "STALE", "NEVER") if counts[s]),
        "  (. fresh, S stale, - never computed)", "", "week of      Mo Tu We Th Fr Sa Su"]
    by_day = {d.date: d for d in days}
    monday = days[0].date - timedelta(days=days[0].date.weekday())
    while monday <= days[-1].date:
        cells = [SYMBOLS[by_day[monday + timedelta(days=i)].state] if monday + timedelta(days=i) in by_day else " "
                 for i in range(7)]
        lines.append(f"{monday}   " + "  ".join(cells))
        monday += timedelta(days=7)
    behind = [d for d in days if d.state != "FRESH"]
    if behind:
        lines += ["", f"{counted(len(behind), 'day')} a stale run would recompute:"]
        lines += [f"  {d.date}  {d.state:<5}  {d.why()}" + (f" (last computed by run {d.run_id})" if d.run_id else "")
                  for d in behind[:max_listed]]
        if len(behind) > max_listed:
            lines.append(f"  ... and {len(behind) - max_listed} more (--json lists every day)")
    return "\n".join(lines)


# --- stale runs ---------------------------------------------------------------------------------------------

def select_stale_days(conn: Connection, run_id: int, start: date, end: date) -> list[DayFreshness]:
    """ValidateConfig of a stale run: the STALE and NEVER days of the range, recorded with their reasons, and the
    run marked stale (commits). A retried ValidateConfig finds the run marked and keeps its first selection."""
    selected = [d for d in day_states(conn, start, end) if d.state != "FRESH"]
    with db.write(conn):
        marked = db.fetch_one(conn, "freshness/mark_run_stale", {"run_id": run_id})
        if marked is not None:
            db.execute(conn, "freshness/record_run_days", {
                "run_id": run_id, "days": [d.date for d in selected], "reasons": [d.reason for d in selected],
                "cause_days": [d.cause_day for d in selected], "previous_run_ids": [d.run_id for d in selected]})
    if marked is None:  # a retried ValidateConfig: the first selection stands
        return [d for d in day_states(conn, start, end) if d.date in set(selected_days(conn, run_id))]
    return selected


def run_days(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    """The days a stale run selected: ``day``, ``reason``, ``cause_day``, ``previous_run_id`` (read-only)."""
    with db.read(conn):
        return db.fetch_all(conn, "freshness/list_run_days", {"run_id": run_id})


def selected_days(conn: Connection, run_id: int) -> list[date]:
    return [r["day"] for r in run_days(conn, run_id)]


def stage_selection(conn: Connection, run_id: int, *, redrive: bool, chunk_ids: Sequence[int] | None) -> list[date]:
    """The owner days a stale run's staging covers: its selected days, or for a redrive the days of the chunks
    it re-processes (so only the recomputed days' rejections are synced)."""
    if not redrive:
        return selected_days(conn, run_id)
    wanted = set(chunk_ids or ())
    pending = [c for c in ledger.unfinished_chunks(conn, run_id) if not wanted or c.chunk_id in wanted]
    return sorted({d for c in pending for d in c.computed_days()})


def stale_plan(conn: Connection, start: date, end: date, sizing: Sizing) -> tuple[list[DayFreshness], list[Chunk]]:
    """What a stale run over the range would take now (read-only, for the plan preview): the days not FRESH, with
    why, and their chunks, planned from the non-cancelled visits per day as the plan preview estimates loads."""
    selected = [d for d in day_states(conn, start, end) if d.state != "FRESH"]
    with db.read(conn):
        rows = db.fetch_all(conn, "tasks/count_visits_by_day", {"window_start": start, "window_end": end})
    loads = {r["visit_date"]: int(r["rows"]) for r in rows}
    return selected, plan_window(start, end, loads, sizing, selected={d.date for d in selected})
