"""The task runners: Task 01 (staging), Task 02 (one chunk), and the run's reconciliation.

Each runs set-based SQL from ``sql/``; nothing here touches rows one by one in Python."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from chunking import db, freshness, ledger
from chunking.db import Connection
from chunking.errors import EtlError, InputError, PermanentError, TransientError, as_pipeline_error
from chunking.ledger import COUNT_FIELDS, ChunkStatus, RunStatus
from chunking.planner import (
    MIN_ROWS_MEASURED,
    Chunk,
    PlanTooLarge,
    Sizing,
    adaptive_sizing,
    check_budget,
    days_between,
    measured_throughput,
    plan_window,
    split_chunk,
)
from chunking.settings import Settings

# An eligible visit starts within a day of its visit_date and lasts at most 24 h, so its interval lies in
# [visit_date - 1, visit_date + 3); a TRAVEL partner may start up to 2 h after the owner ends. A partner of
# an owner dated d is therefore dated at most d + 4: staging reads that far past the range it serves.
PARTNER_DAYS = 4
# The same bound, finer: an eligible owner dated d starts before d + 2 and ends before d + 3, so every partner
# starts before d + 3 days 2 h: a staging never reads a partner day past it (partner_cutoff, often much earlier).
PARTNER_REACH = timedelta(days=3, hours=2)
# The TRAVEL rule's longest gap: a partner starts at most this long after an owner ends (SPEC: at most 120 minutes).
TRAVEL_REACH = timedelta(hours=2)


def partner_cutoff(owners: Sequence[date], last_ends: Mapping[date, datetime]) -> datetime:
    """The latest start of a visit that can pair with an owner dated on one of ``owners`` (the owner days within
    PARTNER_DAYS before a partner day): the latest end of their owners plus TRAVEL_REACH
    (``sql/tasks/owner_last_ends.sql``), never past the bound that holds for any data, the last owner day plus
    PARTNER_REACH. Inclusive: a partner starting exactly 2 h after an owner ends can still pair with it."""
    bound = datetime.combine(max(owners), datetime.min.time()) + PARTNER_REACH
    ends = [last_ends[d] for d in owners if d in last_ends]
    return min(bound, max(ends) + TRAVEL_REACH) if ends else bound


def can_hold_partner(day: date, until: datetime | None) -> bool:
    """Whether a partner day read up to ``until`` (None: whole) can hold a visit that pairs with an owner: an eligible
    visit starts no earlier than the day before its visit_date, so none of ``day`` starts by an ``until`` before it."""
    return until is None or until >= datetime.combine(day - timedelta(days=1), datetime.min.time())


CONNECTION_CHECK_MS = 5_000
# Set for Task 02's transaction. JIT compiles Task 02 in 0.7-0.8 s whatever the chunk's size (the band join's
# estimated cost is far above jit_optimize_above_cost) and made no chunk faster: off (docs/benchmarks.md).
# No nested loop but the LATERAL index lookups, no sequential scan: the plan's shape does not depend on the
# statistics (a conflict map analysed empty made a chunk quadratic; sql/tasks/apply_chunk_conflicts.sql).
STATEMENT_SETTINGS = {"jit": "off", "enable_nestloop": "off", "enable_seqscan": "off"}


@dataclasses.dataclass(frozen=True)
class StageResult:
    staged_rows: int
    owner_rows: int
    rejected_rows: int
    invalid_rows: int
    rejections_written: int
    rejections_cleared: int


def stage_visits(conn: Connection, run_id: int, range_start: date, range_end: date,
                 days: Sequence[date] | None = None, reader: Callable[[], Connection] | None = None) -> StageResult:
    """Task 01: restage the run's visits for a date range (only its owner ``days`` in it, for a stale run), sync
    its rejections, index and ANALYZE the staging, and record the source fingerprints of what it read. Commits.

    The run row is locked first, so staging never changes under a chunk in flight. The run's staging is its
    own partition (schema 004): dropped and created empty, loaded, then indexed and analysed once, all in one
    transaction, so a chunk sees either none of it or all of it with its indexes and statistics. That transaction
    is REPEATABLE READ: one snapshot serves the staged rows and the fingerprints of the days they came from;
    with a ``reader`` (a second connection), the fingerprints are read on it in that snapshot, exported, while this
    one loads (``freshness.fingerprints_beside``). The conflict map is analysed afterwards when it changed enough
    since its last ANALYZE (schema 010)."""
    key = {"run_id": run_id}
    params: dict[str, Any] = {**key, "range_start": range_start, "range_end": range_end,
                              "partner_end": range_end + timedelta(days=PARTNER_DAYS),
                              "days": list(days) if days is not None else None,
                              "stage_days": None, "stage_before": None, "partner_before": None,
                              "stage_partner_days": [], "late_days": [],
                              "partner_days": PARTNER_DAYS}
    if days is not None and not days:  # a stale run with nothing stale: nothing to read, stage or sync
        with db.write(conn):
            _lock_run(conn, run_id, exclusive=True)
            db.execute(conn, "tasks/clear_staged_visits", key)
            ledger.mark_staged(conn, run_id, 0)
        return StageResult(0, 0, 0, 0, 0, 0)
    owner_days = list(days) if days is not None else days_between(range_start, range_end)
    with db.write(conn, first=freshness.begin_snapshot):
        _lock_run(conn, run_id, exclusive=True)
        with freshness.fingerprints_beside(conn, owner_days, reader) as fingerprints:
            db.execute(conn, "tasks/clear_staged_visits", key)
            db.execute(conn, "tasks/create_staged_partition", key)
            params.update(_partner_reads(conn, range_start, range_end, days))
            row = db.fetch_one(conn, "tasks/stage_visits", params)
            counted = db.fetch_one(conn, "tasks/count_staged_visits", params)
            assert row is not None and counted is not None
            result = StageResult(**{k: int(v) for k, v in {**counted, **row}.items()})
            # indexed and analysed before the fingerprints are awaited: the read beside goes on meanwhile (it
            # outlasted the load by 50-75 ms in a stale run of 6 days, whose staging reads 18 days)
            db.execute(conn, "tasks/index_staged_visits", key)
            db.execute(conn, "tasks/analyze_staged_visits", key)
            freshness.record_fingerprints(conn, run_id, owner_days, rows=fingerprints())
        ledger.mark_staged(conn, run_id, result.staged_rows)
    with db.autocommit(conn):
        db.execute(conn, "tasks/analyze_conflict_maps")
    return result


def _partner_reads(conn: Connection, range_start: date, range_end: date,
                   days: Sequence[date] | None) -> dict[str, Any]:
    """In the staging snapshot: how much of each partner day the load reads (``stage_visits.sql``'s parameters).
    A stale run: ``stage_days`` and ``stage_before`` (its owner days whole, each partner day up to its cutoff). A
    plain run: ``partner_before``, the cutoff of each day after the window, and ``partner_end``, the last of them.
    The cutoffs come from the owners' latest ends in this snapshot (``partner_cutoff``): 1 day and 2 h past the
    window's last day in the benchmarks' populations, where the bound alone read 3 days and 2 h of it; a partner day
    whose cutoff comes before any of its visits can be eligible is not read (``can_hold_partner``). And for the
    load's partner_reach: ``stage_partner_days``, the partner days it reads, and ``late_days``, the owner days
    that partner days follow, whose late owners it reads per caregiver (``owner_last_ends.sql``)."""
    owners = sorted(days) if days is not None else days_between(max(range_start, range_end - timedelta(
        days=PARTNER_DAYS - 1)), range_end)
    owning = set(owners)
    followed = [d for d in owners if any(d + timedelta(days=k) not in owning for k in range(1, PARTNER_DAYS + 1))]
    rows = db.fetch_all(conn, "tasks/owner_last_ends", {"days": followed})
    last_ends = {r["day"]: r["last_end"] for r in rows}
    late = {"late_days": [r["day"] for r in rows]}
    cutoffs = freshness.staging_cutoffs(owners, last_ends)
    if days is None:  # the days after the window, in order, up to the first that cannot hold a partner
        after = list(itertools.takewhile(lambda c: can_hold_partner(*c), [c for c in cutoffs if c[0] > range_end]))
        return {"partner_before": [until for _, until in after], "partner_end": range_end + timedelta(days=len(after)),
                "stage_partner_days": [d for d, _ in after], **late}
    read = [(d, until) for d, until in cutoffs if can_hold_partner(d, until)]
    return {"stage_days": [d for d, _ in read], "stage_before": [b for _, b in read],
            "stage_partner_days": [d for d, until in read if until is not None], **late}


def rows_by_day(conn: Connection, run_id: int, window_start: date, window_end: date) -> dict[date, int]:
    with db.read(conn):
        rows = db.fetch_all(conn, "tasks/count_staged_rows_by_day",
                            {"run_id": run_id, "window_start": window_start, "window_end": window_end})
    return {r["visit_date"]: int(r["rows"]) for r in rows}


HISTORY_DAYS = 30


def plan_sizing(conn: Connection, settings: Settings, *, chunk_days: int, fixed_rows: int | None,
                concurrency: int) -> Sizing:
    """How to size a plan now: fixed rows when asked for, else from the throughput recent runs measured."""
    with db.read(conn):
        history = db.fetch_all(conn, "tasks/chunk_history", {
            "min_rows": MIN_ROWS_MEASURED, "days": HISTORY_DAYS,
            "worker_timeout_ms": settings.worker_timeout_s * 1000})
    return adaptive_sizing(measured_throughput(history), chunk_days=chunk_days,
                           target_chunk_seconds=settings.target_chunk_seconds,
                           worker_timeout_s=settings.worker_timeout_s, concurrency=concurrency, fixed_rows=fixed_rows)


class RunWindow(Protocol):
    """A run and its window: a :class:`ledger.Run`, or the state machine's :class:`pipeline.RunContext`."""

    @property
    def run_id(self) -> int: ...
    @property
    def window_start(self) -> date: ...
    @property
    def window_end(self) -> date: ...


def plan_run(conn: Connection, run: RunWindow, sizing: Sizing,
             selected: Sequence[date] | None = None) -> list[Chunk]:
    """Plan the chunks of a fresh run from its staged rows per day and record them with the sizing (commits).
    ``selected``: only these days (a stale run). A plan one execution cannot carry is refused
    (:class:`PermanentError`), naming the limit."""
    run_id = run.run_id
    loads = rows_by_day(conn, run_id, run.window_start, run.window_end)
    chunks = plan_window(run.window_start, run.window_end, loads, sizing,
                         selected=set(selected) if selected is not None else None)
    try:
        check_budget(chunks)
    except PlanTooLarge as exc:
        raise PermanentError(str(exc)) from None
    with db.write(conn):
        ledger.insert_chunks(conn, run_id, chunks)
        ledger.record_sizing(conn, run_id, sizing.as_dict())
    return chunks


def requeue_chunks(conn: Connection, run_id: int, chunk_ids: list[int] | None, sizing: Sizing) -> list[Chunk]:
    """The unfinished chunks of a run (all, or those named), back to PENDING for a redrive (commits).

    A chunk whose last attempt ran out of time is not retried at the same size: it is superseded by two
    halves (balanced by rows), so a redrive converges instead of timing out forever."""
    try:
        rows = ledger.unfinished_chunks(conn, run_id, chunk_ids)
    except InputError as exc:
        raise PermanentError(str(exc)) from None
    if not rows:
        return []
    loads = rows_by_day(conn, run_id, min(r.chunk_start for r in rows), max(r.chunk_end for r in rows))
    queued: list[Chunk] = []
    with db.write(conn):
        next_id = ledger.max_chunk_id(conn, run_id) + 1
        for r in rows:
            rows_in = sum(loads.get(d, 0) for d in r.computed_days())
            chunk = Chunk(r.chunk_id, r.chunk_start, r.chunk_end, rows_in, sizing.estimate_ms(rows_in),
                          owned=tuple(r.owned_days) if r.owned_days is not None else None)
            if r.ran_out_of_time and chunk.days > 1:
                if ledger.supersede_chunk(conn, run_id, r.chunk_id):
                    halves = [dataclasses.replace(h, estimated_ms=sizing.estimate_ms(h.estimated_rows))
                              for h in split_chunk(chunk, loads, next_id)]
                    next_id += len(halves)
                    ledger.insert_chunks(conn, run_id, halves, split_from=r.chunk_id)
                    queued.extend(halves)
            elif ledger.requeue_chunk(conn, run_id, r.chunk_id, estimated_rows=rows_in,
                                      estimated_ms=chunk.estimated_ms):
                queued.append(chunk)
    return queued


def ran_out_of_time(chunk: ledger.Chunk | Mapping[str, Any]) -> bool:
    """Did the chunk's last attempt fail because the database cancelled it at its time limit? (Recorded from
    the SQLSTATE and the limit the attempt set, never from the message text: :attr:`ledger.Chunk.ran_out_of_time`.)"""
    if isinstance(chunk, ledger.Chunk):
        return chunk.ran_out_of_time
    return bool(chunk.get("timed_out"))


# --- Task 02 ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ChunkResult:
    run_id: int
    chunk_id: int
    chunk_start: date
    chunk_end: date
    status: str  # SUCCEEDED (applied now) or DUPLICATE (already applied by an earlier delivery)
    attempt: int | None
    visits: int
    inserted: int
    updated: int
    resolved: int
    reopened: int
    unchanged: int
    duration_ms: int

    def as_output(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["chunk_start"], out["chunk_end"] = self.chunk_start.isoformat(), self.chunk_end.isoformat()
        return out


def apply_chunk(conn: Connection, *, run_id: int, chunk_id: int, chunk_start: date, chunk_end: date,
                worker: str, remaining_ms: Callable[[], int], margin_ms: int, final_attempt: bool,
                before_commit: Callable[[ChunkResult], None] | None = None) -> ChunkResult:
    """Task 02 for one chunk, exactly once in effect.

    Every unit of work here runs under the invocation's time budget (statement and lock timeouts from its
    remaining time). The attempt is counted in its own short transaction; then one transaction locks the
    chunk's ledger row (a concurrent duplicate waits, then finds it SUCCEEDED), runs the statement, and marks the
    chunk SUCCEEDED with its counts before committing (``before_commit`` sees the result first; raising there
    rolls it all back). A failure rolls everything back and is recorded, by SQLSTATE, as RETRYING, or FAILED
    when ``final_attempt`` or permanent; it is re-raised as :class:`TransientError` or :class:`PermanentError`."""
    left = remaining_ms()
    if left - margin_ms < db.MIN_STATEMENT_MS:
        raise TransientError(f"only {left} ms left in this invocation, not enough to run a chunk")
    saved_budget = db.set_budget(conn, db.Budget(remaining_ms, margin_ms))
    try:
        return _apply_chunk(conn, run_id=run_id, chunk_id=chunk_id, chunk_start=chunk_start, chunk_end=chunk_end,
                            worker=worker, final_attempt=final_attempt, before_commit=before_commit)
    finally:
        db.set_budget(conn, saved_budget)


def _apply_chunk(conn: Connection, *, run_id: int, chunk_id: int, chunk_start: date, chunk_end: date, worker: str,
                 final_attempt: bool, before_commit: Callable[[ChunkResult], None] | None) -> ChunkResult:
    chunk = _check_chunk(conn, run_id, chunk_id, chunk_start, chunk_end)
    if chunk.succeeded:
        return _duplicate(chunk, attempt=None)

    with db.write(conn):
        started = ledger.start_attempt(conn, run_id, chunk_id, worker)
        ledger.touch_run(conn, run_id)  # the run's heartbeat: a worker is on it
    if started is None:  # another delivery finished it meanwhile
        return _duplicate(_check_chunk(conn, run_id, chunk_id, chunk_start, chunk_end), attempt=None)
    attempt = started

    began = time.monotonic()
    limit_ms: list[int] = []

    def hit_time_limit() -> bool:  # query_canceled after the statement ran for (about) its whole timeout
        return bool(limit_ms) and (time.monotonic() - began) * 1000 >= limit_ms[0] * 0.9

    try:
        with db.write(conn), db.classified(timed_out=hit_time_limit):
            with db.classified(), conn.cursor() as cur:
                cur.execute("SELECT current_setting('statement_timeout', true)")
                row = cur.fetchone()
            limit_ms.append(_milliseconds(row[0] if row else None))
            settings = {"application_name": f"conflict-map run {run_id} chunk {chunk_id}"[:63], **STATEMENT_SETTINGS}
            if conn.server_version >= 140000:  # the server stops work for a client that has gone away
                settings["client_connection_check_interval"] = str(CONNECTION_CHECK_MS)
            db.set_local(conn, **settings)
            _lock_run(conn, run_id, exclusive=False)
            locked = ledger.lock_chunk(conn, run_id, chunk_id)
            assert locked is not None  # checked above, and chunk rows are never deleted
            if locked.status is ChunkStatus.SUPERSEDED:  # a redrive split it while this delivery waited
                raise PermanentError(f"chunk {chunk_id} of run {run_id} was superseded by a re-plan")  # noqa: TRY301
            if locked.succeeded:  # another delivery committed it while this one waited
                ledger.mark_attempt_duplicate(conn, run_id, chunk_id, attempt)
                return _duplicate(locked, attempt)
            counts = db.fetch_one(conn, "tasks/apply_chunk_conflicts",
                                  {"run_id": run_id, "chunk_start": chunk_start, "chunk_end": chunk_end,
                                   "days": locked.owned_days})
            assert counts is not None
            _check_staging(locked, int(counts["visits"]))
            duration_ms = int((time.monotonic() - began) * 1000)
            result = ChunkResult(run_id, chunk_id, chunk_start, chunk_end, "SUCCEEDED", attempt,
                                 visits=int(counts["visits"]), duration_ms=duration_ms,
                                 **{f: int(counts[f]) for f in COUNT_FIELDS})
            if before_commit is not None:
                before_commit(result)
            ledger.complete_chunk(conn, run_id, chunk_id, attempt, duration_ms=duration_ms, visits=result.visits,
                                  counts={f: getattr(result, f) for f in COUNT_FIELDS})
            freshness.mark_computed(conn, run_id, chunk_id, chunk_start, chunk_end, locked.owned_days)
    except Exception as exc:  # every failure is recorded in the ledger, classified, and re-raised
        error = as_pipeline_error(exc)
        gave_up = final_attempt or isinstance(error, PermanentError)
        _record_failure(conn, run_id, chunk_id, attempt, error, gave_up=gave_up)
        raise error from exc
    return result


def _milliseconds(setting: str | None) -> int:
    """A duration setting as PostgreSQL shows it (``"2500ms"``, ``"3s"``, ``"0"``) in milliseconds."""
    text = (setting or "0").strip()
    for unit, factor in (("ms", 1), ("s", 1000), ("min", 60_000), ("h", 3_600_000), ("d", 86_400_000)):
        if text.endswith(unit) and text[: -len(unit)].strip().isdigit():
            return int(text[: -len(unit)]) * factor
    return int(text) if text.isdigit() else 0


def _check_staging(chunk: ledger.Chunk, staged: int) -> None:
    """The staging table is UNLOGGED (schema 003): crash recovery or a failover empties it. A chunk that does not
    find the staged visits its plan counted must not commit, or it would resolve every conflict of its dates."""
    if staged != chunk.estimated_rows:
        raise PermanentError(
            f"chunk {chunk.chunk_id} of run {chunk.run_id} found {staged:,} staged visits where its plan "
            f"counted {chunk.estimated_rows:,}: the run's staging was lost (a database restart or failover "
            "empties the unlogged staging table); nothing was written, redrive the run to restage it")


def _lock_run(conn: Connection, run_id: int, *, exclusive: bool) -> ledger.RunLock:
    """Lock the run row: chunks share it, staging and reconciliation take it exclusively, so staging is
    never cleared or rebuilt under a chunk in flight. A chunk refuses a run that is not RUNNING."""
    lock = ledger.lock_run(conn, run_id, exclusive=exclusive)
    if lock is None:
        raise PermanentError(f"unknown run {run_id}")
    if not exclusive and (lock.status is not RunStatus.RUNNING or lock.staged_at is None):
        state = lock.status if lock.status is not RunStatus.RUNNING else "RUNNING but not staged"
        raise PermanentError(f"run {run_id} is {state}: chunk not applied")
    return lock


def _check_chunk(conn: Connection, run_id: int, chunk_id: int, chunk_start: date, chunk_end: date) -> ledger.Chunk:
    """The chunk's ledger row; the message must name a chunk of a known run, with the ledger's range."""
    chunk = ledger.find_chunk(conn, run_id, chunk_id)
    if chunk is None:
        if ledger.find_run(conn, run_id) is None:
            raise PermanentError(f"unknown run {run_id}")
        raise PermanentError(f"run {run_id} has no chunk {chunk_id}")
    if (chunk.chunk_start, chunk.chunk_end) != (chunk_start, chunk_end):
        raise PermanentError(f"chunk {chunk_id} of run {run_id} covers {chunk.chunk_start}..{chunk.chunk_end}, "
                             f"not {chunk_start}..{chunk_end}")
    if chunk.status is ChunkStatus.SUPERSEDED:
        raise PermanentError(f"chunk {chunk_id} of run {run_id} was superseded by a re-plan")
    return chunk


def _duplicate(chunk: ledger.Chunk, attempt: int | None) -> ChunkResult:
    return ChunkResult(chunk.run_id, chunk.chunk_id, chunk.chunk_start, chunk.chunk_end, "DUPLICATE",
                       attempt, visits=chunk.count("visits"), duration_ms=int(chunk.duration_ms or 0),
                       **{f: chunk.count(f) for f in COUNT_FIELDS})


def _record_failure(conn: Connection, run_id: int, chunk_id: int, attempt: int, error: EtlError, *,
                    gave_up: bool) -> None:
    """Best effort: the failure is recorded when the database is reachable (the retry happens anyway, and a run
    closed later fails the chunks left unfinished)."""
    code = getattr(error, "code", None)
    timed_out = bool(getattr(error, "timed_out", False))
    saved_budget = db.set_budget(conn, None)  # recording a failure must not fail for want of time
    try:
        with contextlib.suppress(EtlError), db.write(conn):
            ledger.fail_attempt(conn, run_id, chunk_id, attempt, gave_up=gave_up, error_type=type(error).__name__,
                                error=str(error), error_code=code, timed_out=timed_out)
    finally:
        db.set_budget(conn, saved_budget)


# --- reconciliation --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RunOutcome:
    run_id: int
    status: RunStatus
    error: str | None
    chunks: int
    failed_chunks: list[dict[str, Any]]
    counts: dict[str, int]
    rejected: int
    duration_ms: int | None = None

    def as_output(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["status"] = self.status.value
        return out


def abort_run(conn: Connection, run_id: int, message: str, *, driver: str | None = None) -> None:
    """A step failed for good: mark the RUNNING run FAILED with the message, fail its unfinished chunks (for a
    redrive) and clear its staging (commits); only if execution ``driver`` still drives the run."""
    ledger.close_run(conn, run_id, RunStatus.FAILED, message, driver=driver)


def reconcile_run(conn: Connection, run_id: int, *, driver: str | None = None) -> RunOutcome:
    """Check the run against the ledger and the output, mark it SUCCEEDED or FAILED, clear its staging.

    Checks: every planned chunk succeeded (the ledger, not the callbacks, is the truth); no ACTIVE conflict
    in the window lacks a succeeded chunk that owns its date. The run's counts are the sums of its chunks'.
    Only the execution that drives the run (``driver``) may reconcile it (None: whoever asks, for tools and tests)."""
    with db.write(conn):
        lock = _lock_run(conn, run_id, exclusive=True)
        run = ledger.get_run(conn, run_id)
        if lock.status is not RunStatus.RUNNING:
            raise PermanentError(f"run {run_id} is {lock.status}, not RUNNING: nothing to reconcile")
        if run.driven_by_other_than(driver):
            raise PermanentError(f"run {run_id} is driven by execution {run.driver}, not {driver}: "
                                 "this execution does not reconcile it")
        chunks = [c for c in ledger.list_chunks(conn, run_id) if c.live]
        failed = [c for c in chunks if not c.succeeded]
        problems = []
        if not chunks and not run.stale:  # a stale run with nothing stale has no chunks
            problems.append("no chunks were planned")
        if failed:
            names = ", ".join(f"{c.chunk_id} ({c.chunk_start}..{c.chunk_end}: {c.status}"
                              f"{', ' + str(c.last_error) if c.last_error else ''})" for c in failed)
            problems.append(f"{len(failed)} of {len(chunks)} chunks did not succeed: {names}")
        else:
            unowned = ledger.unowned_active_conflicts(conn, run)
            if unowned:
                problems.append(f"{unowned} ACTIVE conflicts in the window have no succeeded chunk")
        status = RunStatus.FAILED if problems else RunStatus.SUCCEEDED
        error = "; ".join(problems)[:4000] if problems else None
        finished = ledger.finish_run(conn, run_id, status, error, driver=driver)
        assert finished is not None
        db.execute(conn, "tasks/clear_staged_visits", {"run_id": run_id})
    # the run that changed the map refreshes its statistics (when it changed enough), so that the next run's steps
    # plan against them instead of paying for it: 0.1 s of the first stale run after a full run filled the map. Best
    # effort, after the run is closed: a failure here must not fail the step (its retry would find the run closed),
    # and the next staging refreshes them anyway
    with contextlib.suppress(EtlError), db.autocommit(conn):
        db.execute(conn, "tasks/analyze_conflict_maps")
    return RunOutcome(
        run_id=run_id, status=status, error=error, chunks=len(chunks),
        failed_chunks=[{"chunk_id": c.chunk_id, "chunk_start": c.chunk_start.isoformat(),
                        "chunk_end": c.chunk_end.isoformat(), "status": c.status.value,
                        "attempts": c.attempts, "error": c.last_error} for c in failed],
        counts={f: finished.count(f) for f in ("visits", *COUNT_FIELDS)},
        rejected=int(finished.rejected_rows or 0),
        duration_ms=int(((finished.finished_at or finished.created_at) - finished.created_at).total_seconds() * 1000))
