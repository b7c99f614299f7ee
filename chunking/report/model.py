"""What a run report shows, as typed data read from the ledger and the output tables in one snapshot.

Nothing here draws: :mod:`chunking.report.geometry` turns this into shapes and :mod:`chunking.report.page` into
HTML. Every statement is a file under ``sql/report/``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Protocol, TypeVar

from chunking import db
from chunking.db import Connection
from chunking.errors import InputError
from chunking.planner import computed_days

COUNTS = ("inserted", "updated", "resolved", "reopened", "unchanged")
LOCAL_EXECUTOR_PREFIX = "local:"  # chunking.ledger.local_executor

T = TypeVar("T")


def _from_row(cls: type[T], row: Mapping[str, Any]) -> T:
    """A dataclass from a row: the fields it names (a missing field takes its default), extra columns ignored."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in row.items() if k in names})


@dataclasses.dataclass(frozen=True)
class Run:
    run_id: int
    execution_name: str
    trigger: str
    status: str
    window_start: date
    window_end: date
    created_at: datetime
    redrives: int = 0
    executor: str | None = None
    staged_at: datetime | None = None
    finished_at: datetime | None = None
    visits: int | None = None
    inserted: int | None = None
    updated: int | None = None
    resolved: int | None = None
    reopened: int | None = None
    unchanged: int | None = None
    rejected_rows: int | None = None
    error: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Run:
        return _from_row(cls, row)

    @property
    def days(self) -> int:
        return (self.window_end - self.window_start).days + 1

    @property
    def local(self) -> bool:
        """Driven on a workstation (``etl-pipeline run --local``), not by an execution in AWS."""
        return str(self.executor or "").startswith(LOCAL_EXECUTOR_PREFIX)


@dataclasses.dataclass(frozen=True)
class Chunk:
    chunk_id: int
    chunk_start: date
    chunk_end: date
    status: str
    attempts: int = 0
    visits: int | None = None
    inserted: int | None = None
    updated: int | None = None
    resolved: int | None = None
    reopened: int | None = None
    unchanged: int | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    last_error: str | None = None
    owned_days: list[date] | None = None  # the days it computes, when not all of its range (schema 15)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Chunk:
        return _from_row(cls, row)

    def computed_days(self) -> list[date]:
        """The days the chunk computes, in order (:func:`chunking.planner.computed_days`)."""
        return computed_days(self.chunk_start, self.chunk_end, self.owned_days)

    def count(self, name: str) -> int:
        return int(getattr(self, name) or 0)

    @property
    def rows(self) -> int:
        """Conflict rows the chunk wrote or confirmed, all five counts together."""
        return sum(self.count(k) for k in COUNTS)

    @property
    def throughput(self) -> float | None:
        """Visits per second of the successful attempt, or None when it has no duration yet."""
        if not self.duration_ms or self.visits is None:
            return None
        return self.visits * 1000 / self.duration_ms


@dataclasses.dataclass(frozen=True)
class Attempt:
    chunk_id: int
    attempt: int
    started_at: datetime
    worker: str | None = None
    finished_at: datetime | None = None
    outcome: str | None = None
    error_type: str | None = None
    error: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Attempt:
        return _from_row(cls, row)

    def state(self, run_status: str) -> str:
        """The recorded outcome, or what an attempt without one means: still running, or its worker stopped."""
        if self.outcome:
            return self.outcome
        return "RUNNING" if run_status == "RUNNING" else "INTERRUPTED"

    @property
    def worker_name(self) -> str:
        return self.worker or "unknown worker"

    @property
    def error_text(self) -> str:
        if not self.error:
            return ""
        return f"{self.error_type}: {self.error}" if self.error_type else self.error


@dataclasses.dataclass(frozen=True)
class Execution:
    """One execution that drove the run: its first (``kind='run'``) or a redrive."""

    execution_name: str
    kind: str
    started_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Execution:
        return _from_row(cls, row)


@dataclasses.dataclass(frozen=True)
class Rejection:
    reason: str
    visits: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Rejection:
        return cls(reason=str(row["reason"]), visits=int(row["visits"] or 0))


@dataclasses.dataclass(frozen=True)
class ConflictDay:
    conflict_date: date
    overlap: int
    travel: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ConflictDay:
        return cls(conflict_date=row["conflict_date"], overlap=int(row["overlap"] or 0),
                   travel=int(row["travel"] or 0))

    @property
    def total(self) -> int:
        return self.overlap + self.travel


class FreshnessDay(Protocol):
    """One day of ``etl-pipeline freshness``: what :func:`chunking.report.render_freshness` draws."""

    @property
    def date(self) -> date: ...
    @property
    def state(self) -> str: ...  # FRESH | STALE | NEVER
    @property
    def run_id(self) -> int | None: ...
    @property
    def computed_at(self) -> datetime | None: ...
    @property
    def reason(self) -> str | None: ...


@dataclasses.dataclass(frozen=True)
class Totals:
    """The tiles' figures: the run's recorded totals, or, for a run that did not finish its work, the sums of
    the chunks it committed (``partial``)."""

    values: dict[str, int | None]
    partial: bool
    committed: int
    planned: int


@dataclasses.dataclass(frozen=True)
class ReportData:
    """Everything the page shows, read at ``generated_at``."""

    run: Run
    chunks: Sequence[Chunk]
    attempts: Sequence[Attempt]
    rejections: Sequence[Rejection]  # the window's rejected visits now, by reason
    conflicts_by_day: Sequence[ConflictDay]  # the window's ACTIVE conflicts now, per day
    generated_at: datetime
    executions: Sequence[Execution] = ()

    @property
    def live_chunks(self) -> list[Chunk]:
        """The chunks of the run's plan (a chunk split after a timeout is SUPERSEDED by its halves)."""
        return [c for c in self.chunks if c.status != "SUPERSEDED"]

    @property
    def redrives(self) -> list[Execution]:
        return [e for e in self.executions if e.kind == "redrive"]

    @property
    def totals(self) -> Totals:
        live = self.live_chunks
        committed = [c for c in live if c.status == "SUCCEEDED"]
        rejected = sum(r.visits for r in self.rejections)
        if self.run.status == "SUCCEEDED":
            values: dict[str, int | None] = {"visits": self.run.visits}
            values |= {k: getattr(self.run, k) for k in COUNTS}
            values["rejected"] = self.run.rejected_rows
            return Totals(values, partial=False, committed=len(committed), planned=len(live))
        values = {"visits": sum(c.count("visits") for c in committed)}
        values |= {k: sum(c.count(k) for c in committed) for k in COUNTS}
        values["rejected"] = self.run.rejected_rows if self.run.rejected_rows is not None else rejected
        return Totals(values, partial=True, committed=len(committed), planned=len(live))


def gather(conn: Connection, run_id: int) -> ReportData:
    """Read one run's ledger rows and its window's rejections and conflicts, all from one snapshot."""
    with db.read(conn, snapshot=True):  # one consistent picture of a live run
        row = db.fetch_one(conn, "report/get_run", {"run_id": run_id})
        if row is None:
            raise InputError(f"no run {run_id} in the ledger")
        run = Run.from_row(row)
        key = {"run_id": run_id}
        window = {"window_start": run.window_start, "window_end": run.window_end}
        return ReportData(
            run=run,
            chunks=[Chunk.from_row(r) for r in db.fetch_all(conn, "report/list_chunks", key)],
            attempts=[Attempt.from_row(r) for r in db.fetch_all(conn, "report/list_attempts", key)],
            rejections=[Rejection.from_row(r) for r in db.fetch_all(conn, "report/count_rejections_by_reason",
                                                                     window)],
            conflicts_by_day=[ConflictDay.from_row(r) for r in db.fetch_all(conn, "report/count_conflicts_by_day",
                                                                             window)],
            executions=[Execution.from_row(r) for r in db.fetch_all(conn, "report/list_run_executions", key)],
            generated_at=datetime.now(UTC))
