"""The run ledger (schema ``etl``): runs, their chunks and every attempt, the truth about what ran.

Functions take an open connection. Those that say "commits" are units of work of their own; the others run
inside the caller's (a chunk's ledger row commits together with the chunk's output). The rules about runs live
here: which runs can be redriven or abandoned, which chunks a redrive takes, who drives a run."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import psycopg2.extras

from chunking import db
from chunking.db import Connection
from chunking.errors import EtlError, InputError, RunAlreadyActive
from chunking.liveness import ExecutionStatus, driver_alive, local_executor
from chunking.planner import Chunk

Row = dict[str, Any]

REDRIVABLE = ("FAILED", "STOPPED")  # a redrive reopens these
ABANDONABLE = ("RUNNING", "FAILED", "STOPPED")
FINISHED_CHUNK_STATES = ("SUCCEEDED", "SUPERSEDED")  # every other chunk is unfinished: a redrive takes it

__all__ = ["ABANDONABLE", "FINISHED_CHUNK_STATES", "REDRIVABLE", "local_executor"]


def describe_run(run: Row) -> str:
    """One line naming a run, for messages."""
    heartbeat = run.get("heartbeat_at")
    beat = ""
    if isinstance(heartbeat, datetime):
        beat = f", last heartbeat {heartbeat:%Y-%m-%d %H:%M:%S %Z}".rstrip()
    driver = run.get("driver") or run["execution_name"]
    return (f"run {run['run_id']} ({run['status']}, window {run['window_start']}..{run['window_end']}, "
            f"execution {driver}{beat})")


def begin_run(conn: Connection, *, execution_name: str, trigger: str, executor: str | None,
              window_start: date, window_end: date, chunk_days: int, max_chunk_rows: int | None,
              max_concurrency: int, execution_status: ExecutionStatus | None = None) -> Row:
    """Create the run of an execution (idempotent per execution name) and commit it.

    An active run whose driver is proven dead is closed first (:func:`close_if_dead`). Raises
    :class:`RunAlreadyActive` naming the active run when another one is RUNNING."""
    with db.read(conn):
        existing = db.fetch_one(conn, "ledger/get_run_by_execution", {"execution_name": execution_name})
    if existing is not None:
        if existing["status"] == "RUNNING":
            return existing  # the same execution asking again (a retried ValidateConfig)
        raise InputError(f"execution {execution_name} already ran as {describe_run(existing)}")
    raise_if_active(conn, execution_status=execution_status)
    try:
        with db.write(conn):
            run = db.fetch_one(conn, "ledger/insert_run", {
                "execution_name": execution_name, "trigger": trigger, "executor": executor,
                "window_start": window_start, "window_end": window_end, "chunk_days": chunk_days,
                "max_chunk_rows": max_chunk_rows, "max_concurrency": max_concurrency})
            assert run is not None
            db.execute(conn, "ledger/record_execution", {"run_id": run["run_id"], "execution_name": execution_name,
                                                          "kind": "run"})
    except EtlError as exc:
        if getattr(exc, "code", None) == "23505":  # unique_violation: another run began meanwhile
            raise_if_active(conn)
        raise
    assert run is not None
    return run


def raise_if_active(conn: Connection, *, except_run: int | None = None,
                    execution_status: ExecutionStatus | None = None) -> None:
    """Raise :class:`RunAlreadyActive` naming the active run, if there is one (other than ``except_run``) and its
    driver is not proven dead; a dead one is closed here, with the reason, and does not count."""
    with db.read(conn):
        active = db.fetch_one(conn, "ledger/get_active_run")
    if active is None or active["run_id"] == except_run:
        return
    if close_if_dead(conn, active, execution_status) is not None:
        return
    raise RunAlreadyActive(
        f"another run is active: {describe_run(active)}; wait for it to finish, or if its process or "
        f"execution is dead, `etl-pipeline abandon --run-id {active['run_id']}`")


def close_if_dead(conn: Connection, run: Row, execution_status: ExecutionStatus | None = None) -> Row | None:
    """Close a RUNNING run whose driver is proven gone as FAILED, with the reason (commits); its unfinished
    chunks become FAILED so that ``redrive`` takes them. Returns the closed run, or None when it lives (or
    cannot be proven dead)."""
    alive, why = driver_alive(run, execution_status)
    if alive is not False:
        return None
    return close_run(conn, run["run_id"], "FAILED", f"closed: {why}; redrive it to finish its chunks")


def close_run(conn: Connection, run_id: int, status: str, reason: str, *, driver: str | None = None) -> Row | None:
    """Close a RUNNING run as FAILED or STOPPED with a reason, failing its unfinished chunks, and clear its
    staging (commits). With ``driver``, only if that execution still drives the run. None if it was not
    RUNNING (or not driven by ``driver``)."""
    assert status in ("FAILED", "STOPPED")
    with db.write(conn):
        closed = db.fetch_one(conn, "ledger/close_run", {"run_id": run_id, "status": status,
                                                          "reason": reason[:4000], "driver": driver})
        if closed is not None:
            db.execute(conn, "tasks/clear_staged_visits", {"run_id": run_id})
    return closed


def reopen_for_redrive(conn: Connection, run_id: int, executor: str | None, *, driver: str | None = None,
                       max_concurrency: int | None = None, execution_status: ExecutionStatus | None = None) -> Row:
    """Reopen a FAILED or STOPPED run for a redrive by execution ``driver`` and commit; keeps the run's
    max_concurrency unless given one. Refuses while another execution drives the run or another run is active."""
    driver = driver or executor or ""
    run = get_run(conn, run_id)
    if run["status"] == "RUNNING":
        if run.get("driver") == driver:
            return run  # a retried ValidateConfig of the same redrive
        if close_if_dead(conn, run, execution_status) is None:
            raise RunAlreadyActive(f"run {run_id} is already being driven by execution {run.get('driver')}: "
                                   f"one driver per run; wait for it, or `etl-pipeline status --run-id {run_id}`")
        run = get_run(conn, run_id)
    if run["status"] not in REDRIVABLE:
        raise InputError(f"run {run_id} is {run['status']}: only a FAILED or STOPPED run can be redriven")
    raise_if_active(conn, except_run=run_id, execution_status=execution_status)
    try:
        with db.write(conn):
            reopened = db.fetch_one(conn, "ledger/reopen_run", {
                "run_id": run_id, "executor": executor, "driver": driver, "max_concurrency": max_concurrency})
            if reopened is not None:
                db.execute(conn, "ledger/record_execution", {"run_id": run_id, "execution_name": driver,
                                                              "kind": "redrive"})
    except EtlError as exc:
        if getattr(exc, "code", None) == "23505":
            raise_if_active(conn, except_run=run_id)
        raise
    if reopened is None:  # another redrive reopened it between our read and our update
        now = get_run(conn, run_id)
        raise RunAlreadyActive(f"run {run_id} is already being driven by execution {now.get('driver')}: "
                               "one driver per run")
    return reopened


def get_run(conn: Connection, run_id: int) -> Row:
    run = find_run(conn, run_id)
    if run is None:
        raise InputError(f"no run {run_id} in the ledger")
    return run


def find_run(conn: Connection, run_id: int) -> Row | None:
    with db.read(conn):
        return db.fetch_one(conn, "ledger/get_run", {"run_id": run_id})


def find_run_by_execution(conn: Connection, execution_name: str) -> Row | None:
    with db.read(conn):
        return db.fetch_one(conn, "ledger/get_run_by_execution", {"execution_name": execution_name})


def active_run(conn: Connection) -> Row | None:
    with db.read(conn):
        return db.fetch_one(conn, "ledger/get_active_run")


def list_runs(conn: Connection, limit: int = 20) -> list[Row]:
    with db.read(conn):
        return db.fetch_all(conn, "ledger/list_runs", {"limit": limit})


def list_chunks(conn: Connection, run_id: int) -> list[Row]:
    with db.read(conn):
        return db.fetch_all(conn, "ledger/list_chunks", {"run_id": run_id})


def list_attempts(conn: Connection, run_id: int) -> list[Row]:
    with db.read(conn):
        return db.fetch_all(conn, "ledger/list_attempts", {"run_id": run_id})


def unfinished_chunks(conn: Connection, run_id: int, only: Iterable[int] | None = None) -> list[Row]:
    """The chunks a redrive re-processes: every chunk not SUCCEEDED or SUPERSEDED (all, or those named;
    naming a chunk that is not unfinished is an :class:`InputError`)."""
    with db.read(conn):
        rows = db.fetch_all(conn, "ledger/list_unfinished_chunks", {"run_id": run_id})
    if only:
        wanted = set(only)
        unknown = sorted(wanted - {r["chunk_id"] for r in rows})
        if unknown:
            raise InputError(f"run {run_id} has no unfinished chunk {', '.join(map(str, unknown))}")
        rows = [r for r in rows if r["chunk_id"] in wanted]
    return rows


def insert_chunks(conn: Connection, run_id: int, chunks: Iterable[Chunk], split_from: int | None = None) -> None:
    params = [{"run_id": run_id, "chunk_id": c.chunk_id, "chunk_start": c.start, "chunk_end": c.end,
               "estimated_rows": c.estimated_rows, "estimated_ms": c.estimated_ms, "split_from": split_from}
              for c in chunks]
    with db.write(conn), db.classified(), conn.cursor() as cur:
        psycopg2.extras.execute_batch(cur, db.load_sql("ledger/insert_chunk"), params)


def touch_run(conn: Connection, run_id: int) -> None:
    """Heartbeat (commits)."""
    with db.write(conn):
        db.execute(conn, "ledger/touch_run", {"run_id": run_id})


def abandon_run(conn: Connection, run_id: int, reason: str) -> Row:
    """Mark a dead run ABANDONED, fail its unfinished chunks and clear its staging (commits)."""
    with db.write(conn):
        run = db.fetch_one(conn, "ledger/abandon_run", {"run_id": run_id, "reason": reason})
        if run is None:
            current = get_run(conn, run_id)
            raise InputError(f"run {run_id} is {current['status']}: only a RUNNING, FAILED or STOPPED run can be "
                             "abandoned")
        db.execute(conn, "tasks/clear_staged_visits", {"run_id": run_id})
    return run


def cancel_chunk_statements(conn: Connection, run_id: int) -> int:
    """Cancel what the run's chunks are running now (they roll back); returns how many were cancelled."""
    with db.read(conn):
        row = db.fetch_one(conn, "ledger/cancel_run_backends", {"run_id": run_id})
    return int(row["cancelled"]) if row else 0
