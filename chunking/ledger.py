"""The run ledger (schema ``etl``): runs, their chunks and every attempt, the truth about what ran.

This module is the ledger's repository: it owns every ``sql/ledger/*.sql`` statement (nothing else runs
one) and returns typed models (:class:`Run`, :class:`Chunk`, :class:`Attempt`, with :class:`RunStatus`,
:class:`ChunkStatus` and :class:`AttemptOutcome`). The rules about them live here, as methods and
functions: which runs can be redriven or abandoned (:attr:`Run.redrivable`, :attr:`Run.abandonable`), which
chunks a redrive takes (:func:`unfinished_chunks`), who drives a run (:func:`close_if_dead`, with
:mod:`chunking.liveness`).

Functions take an open connection. Those that say "commits" are units of work of their own; the others run
inside the caller's (a chunk's ledger row commits together with the chunk's output)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar, Self

import psycopg2.extras

from chunking import db, planner
from chunking.db import Connection
from chunking.errors import EtlError, InputError, RunAlreadyActive
from chunking.liveness import ExecutionStatus, driver_alive, is_local, local_executor

Row = dict[str, Any]


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
    ABANDONED = "ABANDONED"


class ChunkStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SUPERSEDED = "SUPERSEDED"


class AttemptOutcome(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    DUPLICATE = "DUPLICATE"


REDRIVABLE = (RunStatus.FAILED, RunStatus.STOPPED)  # a redrive reopens these
ABANDONABLE = (RunStatus.RUNNING, RunStatus.FAILED, RunStatus.STOPPED)
CLOSABLE = (RunStatus.FAILED, RunStatus.STOPPED)  # what a RUNNING run that will not reconcile becomes
FINISHED_CHUNK_STATES = (ChunkStatus.SUCCEEDED, ChunkStatus.SUPERSEDED)  # every other chunk is unfinished
COUNT_FIELDS = ("inserted", "updated", "resolved", "reopened", "unchanged")  # a chunk's and a run's conflict counts
RUN_STATES = tuple(s.value for s in RunStatus)

__all__ = ["ABANDONABLE", "COUNT_FIELDS", "FINISHED_CHUNK_STATES", "REDRIVABLE", "RUN_STATES", "Attempt", "Chunk",
           "ChunkStatus", "Run", "RunStatus", "local_executor"]


class _Record(Mapping[str, Any]):
    """A ledger row as a frozen, typed model. Columns a statement returns beyond the table's (tallies such as
    ``chunks_abandoned``, or a column a later schema adds) are kept in ``extra``. It is also a read-only mapping of
    its columns (``model["column"]``), for callers written against rows (the bench, the console's progress,
    tests); the core reads attributes."""

    _enums: ClassVar[Mapping[str, type[StrEnum]]] = {}
    extra: Mapping[str, Any]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        names = _field_names(cls)
        values = {k: v for k, v in row.items() if k in names}
        for name, enum in cls._enums.items():
            if values.get(name) is not None:
                values[name] = enum(values[name])
        values["extra"] = {k: v for k, v in row.items() if k not in names}
        for name in names - values.keys():
            values[name] = None  # a statement that returns part of a row (none of the repository's do today)
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The row as the statement returned it (statuses as their strings)."""
        out = {f: getattr(self, f) for f in _field_names(type(self))}
        out.update(self.extra)
        return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in out.items()}

    def __getitem__(self, key: str) -> Any:
        if key in _field_names(type(self)):
            return getattr(self, key)
        return self.extra[key]

    def __iter__(self) -> Iterator[str]:
        yield from _field_names(type(self))
        yield from self.extra

    def __len__(self) -> int:
        return len(_field_names(type(self))) + len(self.extra)

    def __or__(self, other: Mapping[str, Any]) -> dict[str, Any]:
        """``model | {...}``: the row as a dict with ``other``'s values (as two dicts merge)."""
        return {**self.as_dict(), **other}


def _field_names(cls: type) -> frozenset[str]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = frozenset(f.name for f in dataclasses.fields(cls) if f.name != "extra")
    return names


_FIELDS: dict[type, frozenset[str]] = {}


@dataclasses.dataclass(frozen=True)
class Run(_Record):
    """One row of ``etl.runs``."""

    _enums: ClassVar[Mapping[str, type[StrEnum]]] = {"status": RunStatus}

    run_id: int
    execution_name: str
    trigger: str
    executor: str | None
    driver: str | None
    window_start: date
    window_end: date
    status: RunStatus
    chunk_days: int
    max_chunk_rows: int | None
    max_concurrency: int
    redrives: int
    created_at: datetime
    staged_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime
    staged_rows: int | None
    rejected_rows: int | None
    invalid_rows: int | None
    chunks_planned: int | None
    visits: int | None
    inserted: int | None
    updated: int | None
    resolved: int | None
    reopened: int | None
    unchanged: int | None
    sizing: dict[str, Any] | None
    error: str | None
    stale: bool  # a run of the stale days only (schema 006)
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def running(self) -> bool:
        return self.status is RunStatus.RUNNING

    @property
    def redrivable(self) -> bool:
        """Only a FAILED or STOPPED run can be redriven."""
        return self.status in REDRIVABLE

    @property
    def abandonable(self) -> bool:
        """Only a RUNNING, FAILED or STOPPED run can be abandoned."""
        return self.status in ABANDONABLE

    @property
    def local(self) -> bool:
        """Driven (its latest execution) from a workstation, not by an execution in AWS."""
        return is_local(self)

    @property
    def driven_by(self) -> str:
        """The execution that drives the run (its latest redrive's, or the one that began it)."""
        return self.driver or self.execution_name

    def driven_by_other_than(self, driver: str | None) -> bool:
        """Is the run driven by an execution other than ``driver``? (None: whoever asks may act on it.)"""
        return driver is not None and self.driver != driver

    def count(self, name: str) -> int:
        """``visits`` or one of :data:`COUNT_FIELDS`, 0 when not recorded."""
        return int(getattr(self, name) or 0)

    def tally(self, name: str) -> int:
        """A tally a statement returned with the row (``chunks_abandoned``, ``chunks_succeeded``, ...)."""
        return int(self.extra.get(name) or 0)

    def describe(self) -> str:
        """One line naming the run, for messages."""
        beat = ""
        if isinstance(self.heartbeat_at, datetime):
            beat = f", last heartbeat {self.heartbeat_at:%Y-%m-%d %H:%M:%S %Z}".rstrip()
        return (f"run {self.run_id} ({self.status}, window {self.window_start}..{self.window_end}, "
                f"execution {self.driven_by}{beat})")

    def abandon_reason_after_end(self) -> str:
        """Why a FAILED or STOPPED run is abandoned (it was not redriven)."""
        return f"abandoned after it {'failed' if self.status is RunStatus.FAILED else 'was stopped'} (not redriven)"


@dataclasses.dataclass(frozen=True)
class Chunk(_Record):
    """One row of ``etl.chunks``."""

    _enums: ClassVar[Mapping[str, type[StrEnum]]] = {"status": ChunkStatus}

    run_id: int
    chunk_id: int
    chunk_start: date
    chunk_end: date
    status: ChunkStatus
    estimated_rows: int
    estimated_ms: int | None
    split_from: int | None
    attempts: int
    visits: int | None
    inserted: int | None
    updated: int | None
    resolved: int | None
    reopened: int | None
    unchanged: int | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    error_type: str | None
    error_code: str | None
    timed_out: bool
    last_error: str | None
    # the days it computes when they are not every day of its range (a stale run's chunk: schema 15); None: all
    owned_days: list[date] | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def computed_days(self) -> list[date]:
        """The days the chunk computes, in order: its owned days, or every day of its range."""
        return planner.computed_days(self.chunk_start, self.chunk_end, self.owned_days)

    @property
    def finished(self) -> bool:
        """SUCCEEDED or SUPERSEDED: a redrive does not take it."""
        return self.status in FINISHED_CHUNK_STATES

    @property
    def live(self) -> bool:
        """Part of the run's plan now (not superseded by its halves)."""
        return self.status is not ChunkStatus.SUPERSEDED

    @property
    def succeeded(self) -> bool:
        return self.status is ChunkStatus.SUCCEEDED

    @property
    def ran_out_of_time(self) -> bool:
        """Did its last attempt fail because the database cancelled it at its time limit? (Recorded from the
        SQLSTATE and the limit the attempt set, never from the message text.)"""
        return bool(self.timed_out)

    def count(self, name: str) -> int:
        return int(getattr(self, name) or 0)


@dataclasses.dataclass(frozen=True)
class Attempt(_Record):
    """One row of ``etl.chunk_attempts``."""

    _enums: ClassVar[Mapping[str, type[StrEnum]]] = {"outcome": AttemptOutcome}

    run_id: int
    chunk_id: int
    attempt: int
    worker: str | None
    started_at: datetime
    finished_at: datetime | None
    outcome: AttemptOutcome | None
    error_type: str | None
    error: str | None
    error_code: str | None
    timed_out: bool
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)


def _run(row: Row | None) -> Run | None:
    return Run.from_row(row) if row is not None else None


def describe_run(run: Run) -> str:
    """One line naming a run, for messages."""
    return run.describe()


# --- runs ----------------------------------------------------------------------------------------------------

def begin_run(conn: Connection, *, execution_name: str, trigger: str, executor: str | None,
              window_start: date, window_end: date, chunk_days: int, max_chunk_rows: int | None,
              max_concurrency: int, execution_status: ExecutionStatus | None = None) -> Run:
    """Create the run of an execution (idempotent per execution name) and commit it.

    An active run whose driver is proven dead is closed first (:func:`close_if_dead`). Raises
    :class:`RunAlreadyActive` naming the active run when another one is RUNNING."""
    existing = find_run_by_execution(conn, execution_name)
    if existing is not None:
        if existing.running:
            return existing  # the same execution asking again (a retried ValidateConfig)
        raise InputError(f"execution {execution_name} already ran as {existing.describe()}")
    raise_if_active(conn, execution_status=execution_status)
    try:
        with db.write(conn):
            run = _run(db.fetch_one(conn, "ledger/insert_run", {
                "execution_name": execution_name, "trigger": trigger, "executor": executor,
                "window_start": window_start, "window_end": window_end, "chunk_days": chunk_days,
                "max_chunk_rows": max_chunk_rows, "max_concurrency": max_concurrency}))
            assert run is not None
            _record_execution(conn, run.run_id, execution_name, "run")
    except EtlError as exc:
        if getattr(exc, "code", None) == "23505":  # unique_violation: another run began meanwhile
            raise_if_active(conn)
        raise
    return run


def _record_execution(conn: Connection, run_id: int, execution_name: str, kind: str) -> None:
    db.execute(conn, "ledger/record_execution", {"run_id": run_id, "execution_name": execution_name, "kind": kind})


def raise_if_active(conn: Connection, *, except_run: int | None = None,
                    execution_status: ExecutionStatus | None = None) -> None:
    """Raise :class:`RunAlreadyActive` naming the active run, if there is one (other than ``except_run``) and its
    driver is not proven dead; a dead one is closed here, with the reason, and does not count."""
    active = active_run(conn)
    if active is None or active.run_id == except_run:
        return
    if close_if_dead(conn, active, execution_status) is not None:
        return
    raise RunAlreadyActive(
        f"another run is active: {active.describe()}; wait for it to finish, or if its process or "
        f"execution is dead, `etl-pipeline abandon --run-id {active.run_id}`")


def close_if_dead(conn: Connection, run: Run, execution_status: ExecutionStatus | None = None) -> Run | None:
    """Close a RUNNING run whose driver is proven gone as FAILED, with the reason (commits); its unfinished
    chunks become FAILED so that ``redrive`` takes them. Returns the closed run, or None when it lives (or
    cannot be proven dead)."""
    alive, why = driver_alive(run, execution_status)
    if alive is not False:
        return None
    return close_run(conn, run.run_id, RunStatus.FAILED, f"closed: {why}; redrive it to finish its chunks")


def close_run(conn: Connection, run_id: int, status: RunStatus | str, reason: str, *,
              driver: str | None = None) -> Run | None:
    """Close a RUNNING run as FAILED or STOPPED with a reason, failing its unfinished chunks, and clear its
    staging (commits). With ``driver``, only if that execution still drives the run. None if it was not
    RUNNING (or not driven by ``driver``)."""
    status = RunStatus(status)
    assert status in CLOSABLE
    with db.write(conn):
        closed = _run(db.fetch_one(conn, "ledger/close_run", {"run_id": run_id, "status": status.value,
                                                               "reason": reason[:4000], "driver": driver}))
        if closed is not None:
            db.execute(conn, "tasks/clear_staged_visits", {"run_id": run_id})
    return closed


def reopen_for_redrive(conn: Connection, run_id: int, executor: str | None, *, driver: str | None = None,
                       max_concurrency: int | None = None, execution_status: ExecutionStatus | None = None) -> Run:
    """Reopen a FAILED or STOPPED run for a redrive by execution ``driver`` and commit; keeps the run's
    max_concurrency unless given one. Refuses while another execution drives the run or another run is active."""
    driver = driver or executor or ""
    run = get_run(conn, run_id)
    if run.running:
        if run.driver == driver:
            return run  # a retried ValidateConfig of the same redrive
        if close_if_dead(conn, run, execution_status) is None:
            raise RunAlreadyActive(f"run {run_id} is already being driven by execution {run.driver}: "
                                   f"one driver per run; wait for it, or `etl-pipeline status --run-id {run_id}`")
        run = get_run(conn, run_id)
    require_redrivable(run)
    raise_if_active(conn, except_run=run_id, execution_status=execution_status)
    try:
        with db.write(conn):
            reopened = _run(db.fetch_one(conn, "ledger/reopen_run", {
                "run_id": run_id, "executor": executor, "driver": driver, "max_concurrency": max_concurrency}))
            if reopened is not None:
                _record_execution(conn, run_id, driver, "redrive")
    except EtlError as exc:
        if getattr(exc, "code", None) == "23505":
            raise_if_active(conn, except_run=run_id)
        raise
    if reopened is None:  # another redrive reopened it between our read and our update
        now = get_run(conn, run_id)
        raise RunAlreadyActive(f"run {run_id} is already being driven by execution {now.driver}: "
                               "one driver per run")
    return reopened


def require_redrivable(run: Run) -> None:
    """Only a FAILED or STOPPED run can be redriven (:class:`InputError` otherwise)."""
    if not run.redrivable:
        raise InputError(f"run {run.run_id} is {run.status}: only a FAILED or STOPPED run can be redriven")


def require_abandonable(run: Run) -> None:
    """Only a RUNNING, FAILED or STOPPED run can be abandoned (:class:`InputError` otherwise)."""
    if not run.abandonable:
        raise InputError(f"run {run.run_id} is {run.status}: only a RUNNING, FAILED or STOPPED run can be "
                         "abandoned")


def get_run(conn: Connection, run_id: int) -> Run:
    run = find_run(conn, run_id)
    if run is None:
        raise InputError(f"no run {run_id} in the ledger")
    return run


def find_run(conn: Connection, run_id: int) -> Run | None:
    with db.read(conn):
        return _run(db.fetch_one(conn, "ledger/get_run", {"run_id": run_id}))


def find_run_by_execution(conn: Connection, execution_name: str) -> Run | None:
    with db.read(conn):
        return _run(db.fetch_one(conn, "ledger/get_run_by_execution", {"execution_name": execution_name}))


def active_run(conn: Connection) -> Run | None:
    with db.read(conn):
        return _run(db.fetch_one(conn, "ledger/get_active_run"))


def list_runs(conn: Connection, limit: int = 20, *, status: RunStatus | str | None = None,
              since: datetime | None = None) -> list[Run]:
    """The latest runs, newest first, with their chunk tallies (``run.tally("chunks_succeeded")``); only those in
    ``status`` and begun since ``since``, when given."""
    with db.read(conn):
        rows = db.fetch_all(conn, "ledger/list_runs", {
            "status": RunStatus(str(status).upper()).value if status else None, "limit": limit, "since": since})
    return [Run.from_row(r) for r in rows]


def touch_run(conn: Connection, run_id: int) -> None:
    """Heartbeat (commits, or joins the caller's unit of work)."""
    with db.write(conn):
        db.execute(conn, "ledger/touch_run", {"run_id": run_id})


def mark_staged(conn: Connection, run_id: int, staged_rows: int) -> None:
    """Task 01 staged the run (inside its unit of work)."""
    db.execute(conn, "ledger/mark_run_staged", {"run_id": run_id, "staged_rows": staged_rows})


def record_sizing(conn: Connection, run_id: int, sizing: Mapping[str, Any]) -> None:
    db.execute(conn, "ledger/record_sizing", {"run_id": run_id, "sizing": json.dumps(sizing)})


@dataclasses.dataclass(frozen=True)
class RunLock:
    status: RunStatus
    staged_at: datetime | None


def lock_run(conn: Connection, run_id: int, *, exclusive: bool) -> RunLock | None:
    """Lock the run row for the caller's unit of work: chunks share it (FOR KEY SHARE), staging and
    reconciliation take it exclusively. None for an unknown run."""
    row = db.fetch_one(conn, "ledger/lock_run_exclusive" if exclusive else "ledger/lock_run_shared",
                       {"run_id": run_id})
    return RunLock(RunStatus(row["status"]), row["staged_at"]) if row is not None else None


def unowned_active_conflicts(conn: Connection, run: Run) -> int:
    """ACTIVE conflicts in the run's window that no succeeded chunk of it owns (0 for a sound run)."""
    row = db.fetch_one(conn, "ledger/count_unowned_active_conflicts", {
        "run_id": run.run_id, "window_start": run.window_start, "window_end": run.window_end})
    return int(row["unowned"]) if row else 0


def finish_run(conn: Connection, run_id: int, status: RunStatus, error: str | None, *,
               driver: str | None) -> Run | None:
    """Close a reconciled run with its outcome and its chunks' sums (inside the caller's unit of work)."""
    return _run(db.fetch_one(conn, "ledger/finish_run", {"run_id": run_id, "status": status.value, "error": error,
                                                          "driver": driver}))


def abandon_run(conn: Connection, run_id: int, reason: str) -> Run:
    """Mark a dead run ABANDONED, fail its unfinished chunks and clear its staging (commits); the returned run
    tallies ``chunks_abandoned``."""
    with db.write(conn):
        run = _run(db.fetch_one(conn, "ledger/abandon_run", {"run_id": run_id, "reason": reason}))
        if run is None:
            require_abandonable(get_run(conn, run_id))
            raise InputError(f"run {run_id} could not be abandoned")  # pragma: no cover - it changed meanwhile
        db.execute(conn, "tasks/clear_staged_visits", {"run_id": run_id})
    return run


def cancel_chunk_statements(conn: Connection, run_id: int) -> int:
    """Cancel what the run's chunks are running now (they roll back); returns how many were cancelled."""
    with db.read(conn):
        row = db.fetch_one(conn, "ledger/cancel_run_backends", {"run_id": run_id})
    return int(row["cancelled"]) if row else 0


# --- chunks and attempts -------------------------------------------------------------------------------------

def list_chunks(conn: Connection, run_id: int) -> list[Chunk]:
    with db.read(conn):
        return [Chunk.from_row(r) for r in db.fetch_all(conn, "ledger/list_chunks", {"run_id": run_id})]


def list_attempts(conn: Connection, run_id: int) -> list[Attempt]:
    with db.read(conn):
        return [Attempt.from_row(r) for r in db.fetch_all(conn, "ledger/list_attempts", {"run_id": run_id})]


def find_chunk(conn: Connection, run_id: int, chunk_id: int) -> Chunk | None:
    with db.read(conn):
        row = db.fetch_one(conn, "ledger/get_chunk", {"run_id": run_id, "chunk_id": chunk_id})
    return Chunk.from_row(row) if row is not None else None


def lock_chunk(conn: Connection, run_id: int, chunk_id: int) -> Chunk | None:
    """The chunk's row, locked for the caller's unit of work (a duplicate delivery waits here)."""
    row = db.fetch_one(conn, "ledger/lock_chunk", {"run_id": run_id, "chunk_id": chunk_id})
    return Chunk.from_row(row) if row is not None else None


def unfinished_chunks(conn: Connection, run_id: int, only: Iterable[int] | None = None) -> list[Chunk]:
    """The chunks a redrive re-processes: every chunk not SUCCEEDED or SUPERSEDED (all, or those named;
    naming a chunk that is not unfinished is an :class:`InputError`)."""
    with db.read(conn):
        rows = [Chunk.from_row(r) for r in db.fetch_all(conn, "ledger/list_unfinished_chunks", {"run_id": run_id})]
    if only:
        wanted = set(only)
        unknown = sorted(wanted - {r.chunk_id for r in rows})
        if unknown:
            raise InputError(f"run {run_id} has no unfinished chunk {', '.join(map(str, unknown))}")
        rows = [r for r in rows if r.chunk_id in wanted]
    return rows


def insert_chunks(conn: Connection, run_id: int, chunks: Iterable[planner.Chunk],
                  split_from: int | None = None) -> None:
    params = [{"run_id": run_id, "chunk_id": c.chunk_id, "chunk_start": c.start, "chunk_end": c.end,
               "estimated_rows": c.estimated_rows, "estimated_ms": c.estimated_ms, "split_from": split_from,
               "owned_days": list(c.owned) if c.owned is not None else None}
              for c in chunks]
    with db.write(conn), db.classified(), conn.cursor() as cur:
        psycopg2.extras.execute_batch(cur, db.load_sql("ledger/insert_chunk"), params)


def max_chunk_id(conn: Connection, run_id: int) -> int:
    row = db.fetch_one(conn, "ledger/max_chunk_id", {"run_id": run_id})
    return int(row["max_chunk_id"]) if row else 0


def supersede_chunk(conn: Connection, run_id: int, chunk_id: int) -> bool:
    """Mark an unfinished chunk SUPERSEDED (its halves replace it); False if it was finished meanwhile."""
    return db.fetch_one(conn, "ledger/supersede_chunk", {"run_id": run_id, "chunk_id": chunk_id}) is not None


def requeue_chunk(conn: Connection, run_id: int, chunk_id: int, *, estimated_rows: int,
                  estimated_ms: int | None) -> bool:
    """Back to PENDING for a redrive, with a fresh estimate; False if it was finished meanwhile."""
    return db.fetch_one(conn, "ledger/requeue_chunk", {"run_id": run_id, "chunk_id": chunk_id,
                                                        "estimated_rows": estimated_rows,
                                                        "estimated_ms": estimated_ms}) is not None


def start_attempt(conn: Connection, run_id: int, chunk_id: int, worker: str) -> int | None:
    """Count an attempt of an unfinished chunk and mark it RUNNING; its number, or None if it is finished."""
    row = db.fetch_one(conn, "ledger/start_chunk_attempt", {"run_id": run_id, "chunk_id": chunk_id, "worker": worker})
    return int(row["attempt"]) if row else None


def mark_attempt_duplicate(conn: Connection, run_id: int, chunk_id: int, attempt: int) -> None:
    db.execute(conn, "ledger/mark_attempt_duplicate", {"run_id": run_id, "chunk_id": chunk_id, "attempt": attempt})


def complete_chunk(conn: Connection, run_id: int, chunk_id: int, attempt: int, *, duration_ms: int, visits: int,
                   counts: Mapping[str, int]) -> None:
    """The chunk SUCCEEDED with its counts (inside the unit of work that wrote its output)."""
    db.execute(conn, "ledger/complete_chunk", {"run_id": run_id, "chunk_id": chunk_id, "attempt": attempt,
                                               "duration_ms": duration_ms, "visits": visits,
                                               **{f: counts[f] for f in COUNT_FIELDS}})


def fail_attempt(conn: Connection, run_id: int, chunk_id: int, attempt: int, *, gave_up: bool, error_type: str,
                 error: str, error_code: str | None, timed_out: bool) -> None:
    """Record a failed attempt: the chunk becomes FAILED when the worker gave up on it, else RETRYING."""
    db.execute(conn, "ledger/fail_chunk_attempt", {
        "run_id": run_id, "chunk_id": chunk_id, "attempt": attempt,
        "status": (ChunkStatus.FAILED if gave_up else ChunkStatus.RETRYING).value, "error_type": error_type,
        "error": error[:2000], "error_code": error_code, "timed_out": timed_out})
