"""The run ledger (schema ``etl``): runs, their chunks and every attempt, the truth about what ran.

Functions take an open connection and commit nothing themselves unless they say so; callers own
transactions (a chunk's ledger row commits together with the chunk's output)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extras

from chunking import db
from chunking.db import Connection
from chunking.errors import InputError, RunAlreadyActive
from chunking.planner import Chunk

Row = dict[str, Any]

ACTIVE_CHUNK_STATES = ("PENDING", "RUNNING", "RETRYING")


def local_executor() -> str:
    """Who drives a local run: ``local:<host>:<pid>``, so a later command can tell whether it still lives."""
    return f"local:{socket.gethostname()}:{os.getpid()}"


def describe_run(run: Row) -> str:
    """One line naming a run, for messages."""
    heartbeat = run.get("heartbeat_at")
    beat = ""
    if isinstance(heartbeat, datetime):
        beat = f", last heartbeat {heartbeat:%Y-%m-%d %H:%M:%S %Z}".rstrip()
    return (f"run {run['run_id']} ({run['status']}, window {run['window_start']}..{run['window_end']}, "
            f"execution {run['execution_name']}{beat})")


def begin_run(conn: Connection, *, execution_name: str, trigger: str, executor: str | None,
              window_start: date, window_end: date, chunk_days: int, max_chunk_rows: int | None,
              max_concurrency: int) -> Row:
    """Create the run of an execution (idempotent per execution name) and commit it.

    Raises :class:`RunAlreadyActive` naming the active run when another one is RUNNING."""
    existing = db.fetch_one(conn, "ledger/get_run_by_execution", {"execution_name": execution_name})
    if existing is not None:
        conn.rollback()
        if existing["status"] == "RUNNING":
            return existing  # the same execution asking again (a retried ValidateConfig)
        raise InputError(f"execution {execution_name} already ran as {describe_run(existing)}")
    try:
        with db.transaction(conn):
            run = db.fetch_one(conn, "ledger/insert_run", {
                "execution_name": execution_name, "trigger": trigger, "executor": executor,
                "window_start": window_start, "window_end": window_end, "chunk_days": chunk_days,
                "max_chunk_rows": max_chunk_rows, "max_concurrency": max_concurrency})
    except psycopg2.errors.UniqueViolation:
        raise_if_active(conn)
        raise
    assert run is not None
    return run


def raise_if_active(conn: Connection, *, except_run: int | None = None) -> None:
    """Raise :class:`RunAlreadyActive` naming the active run, if there is one (other than ``except_run``)."""
    active = active_run(conn)
    if active is not None and active["run_id"] != except_run:
        raise RunAlreadyActive(
            f"another run is active: {describe_run(active)}; wait for it to finish, or if its process or "
            f"execution is dead, `etl-pipeline abandon --run-id {active['run_id']}`")


def reopen_for_redrive(conn: Connection, run_id: int, executor: str | None) -> Row:
    """Reopen a FAILED run for a redrive and commit; refuses while another run is active."""
    run = get_run(conn, run_id)
    if run["status"] == "RUNNING":
        conn.rollback()
        return run  # a retried ValidateConfig of the same redrive
    if run["status"] != "FAILED":
        conn.rollback()
        raise InputError(f"run {run_id} is {run['status']}: only a FAILED run can be redriven")
    raise_if_active(conn, except_run=run_id)
    try:
        with db.transaction(conn):
            reopened = db.fetch_one(conn, "ledger/reopen_run", {"run_id": run_id, "executor": executor})
    except psycopg2.errors.UniqueViolation:
        raise_if_active(conn, except_run=run_id)
        raise
    if reopened is None:
        raise InputError(f"run {run_id} changed state while being reopened; look at `etl-pipeline status`")
    return reopened


def get_run(conn: Connection, run_id: int) -> Row:
    run = db.fetch_one(conn, "ledger/get_run", {"run_id": run_id})
    if run is None:
        conn.rollback()
        raise InputError(f"no run {run_id} in the ledger")
    return run


def find_run(conn: Connection, run_id: int) -> Row | None:
    return db.fetch_one(conn, "ledger/get_run", {"run_id": run_id})


def active_run(conn: Connection) -> Row | None:
    return db.fetch_one(conn, "ledger/get_active_run")


def list_runs(conn: Connection, limit: int = 20) -> list[Row]:
    return db.fetch_all(conn, "ledger/list_runs", {"limit": limit})


def list_chunks(conn: Connection, run_id: int) -> list[Row]:
    return db.fetch_all(conn, "ledger/list_chunks", {"run_id": run_id})


def list_attempts(conn: Connection, run_id: int) -> list[Row]:
    return db.fetch_all(conn, "ledger/list_attempts", {"run_id": run_id})


def unfinished_chunks(conn: Connection, run_id: int) -> list[Row]:
    return db.fetch_all(conn, "ledger/list_unfinished_chunks", {"run_id": run_id})


def insert_chunks(conn: Connection, run_id: int, chunks: Iterable[Chunk], split_from: int | None = None) -> None:
    params = [{"run_id": run_id, "chunk_id": c.chunk_id, "chunk_start": c.start, "chunk_end": c.end,
               "estimated_rows": c.estimated_rows, "estimated_ms": c.estimated_ms, "split_from": split_from}
              for c in chunks]
    with conn.cursor() as cur:
        psycopg2.extras.execute_batch(cur, db.load_sql("ledger/insert_chunk"), params)


def touch_run(conn: Connection, run_id: int) -> None:
    """Heartbeat (commits)."""
    with db.transaction(conn):
        db.execute(conn, "ledger/touch_run", {"run_id": run_id})


def abandon_run(conn: Connection, run_id: int, reason: str) -> Row:
    """Mark a dead run ABANDONED, fail its unfinished chunks and clear its staging (commits)."""
    with db.transaction(conn):
        run = db.fetch_one(conn, "ledger/abandon_run", {"run_id": run_id, "reason": reason})
        if run is None:
            current = get_run(conn, run_id)
            raise InputError(f"run {run_id} is {current['status']}: only a RUNNING or FAILED run can be abandoned")
        db.execute(conn, "tasks/clear_staged_visits", {"run_id": run_id})
    return run
