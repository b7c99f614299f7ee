"""Drive one execution (a run or a redrive) and follow it through the ledger until it ends.

The emulated cloud (:class:`chunking.emulator.LocalCloud`) and the deployed one share one interface,
so ``run``/``redrive`` behave the same locally and in AWS; the ledger is what both report from."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Protocol

from chunking import db, ledger
from chunking.console import Progress
from chunking.db import Connection
from chunking.errors import step_error_message
from chunking.observability import summarise

HEARTBEAT_EVERY_S = 5.0


class Cloud(Protocol):
    def start_workers(self) -> None: ...
    def start_execution(self, name: str, payload: dict[str, Any]) -> str: ...
    def wait(self, execution_arn: str, on_tick: Callable[[], None] | None = None,
             interval_s: float = 0.2) -> dict[str, Any]: ...
    def dead_letters(self, *, delete: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]: ...


@dataclasses.dataclass
class RunReport:
    execution_name: str
    execution_status: str
    run: dict[str, Any] | None
    chunks: list[dict[str, Any]]
    error: str | None
    seconds: float
    metrics: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # EMF, summarised (local)

    @property
    def succeeded(self) -> bool:
        return self.run is not None and self.run["status"] == "SUCCEEDED" and self.execution_status == "SUCCEEDED"


def wait_for(describe: Callable[[str], dict[str, Any]], execution_arn: str,
             on_tick: Callable[[], None] | None, interval_s: float) -> dict[str, Any]:
    """Poll an execution until it is no longer RUNNING, calling ``on_tick`` between polls."""
    while True:
        described = describe(execution_arn)
        if described["status"] != "RUNNING":
            return described
        if on_tick:
            on_tick()
        time.sleep(interval_s)


def execution_name(kind: str, *parts: object) -> str:
    """A readable, unique execution name (Step Functions allows 80 characters, no colons or spaces)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return "-".join([kind, *map(str, parts), stamp, secrets.token_hex(2)])[:80]


def execution_error(described: dict[str, Any]) -> str | None:
    """The readable cause of an execution that did not succeed."""
    if described.get("status") == "SUCCEEDED":
        return None
    return step_error_message(described.get("error") or described.get("status"), described.get("cause"))


def follow(cloud: Cloud, conn: Connection, *, name: str, payload: dict[str, Any], run_id: int | None,
           progress: Progress | None, only_chunks: set[int] | None = None) -> RunReport:
    """Start the execution, show chunk progress from the ledger while it runs, and report its outcome."""
    began = time.monotonic()
    cloud.start_workers()
    arn = cloud.start_execution(name, payload)
    known_run = run_id
    last_beat = 0.0

    def tick() -> None:
        nonlocal known_run, last_beat
        if known_run is None:
            found = db.fetch_one(conn, "ledger/get_run_by_execution", {"execution_name": name})
            conn.rollback()
            known_run = found["run_id"] if found else None
        if known_run is None:
            if progress:
                progress.update(0, 0, 0, 0, phase="starting")
            return
        if time.monotonic() - last_beat > HEARTBEAT_EVERY_S:
            ledger.touch_run(conn, known_run)
            last_beat = time.monotonic()
        if progress:
            chunks = [c for c in ledger.list_chunks(conn, known_run) if c["status"] != "SUPERSEDED"]
            conn.rollback()
            if only_chunks is not None:  # a redrive: count only what it re-processes
                chunks = [c for c in chunks if c["chunk_id"] in only_chunks]
            states = [c["status"] for c in chunks]
            progress.update(states.count("SUCCEEDED"), len(states), states.count("RUNNING"),
                            states.count("FAILED"), states.count("RETRYING"),
                            phase="staging and planning" if not states else "")

    try:
        described = cloud.wait(arn, on_tick=tick)
    finally:
        if progress:
            progress.finish()
    if known_run is None:
        found = db.fetch_one(conn, "ledger/get_run_by_execution", {"execution_name": name})
        known_run = found["run_id"] if found else None
    run = ledger.find_run(conn, known_run) if known_run else None
    chunks = ledger.list_chunks(conn, known_run) if known_run else []
    conn.rollback()
    return RunReport(name, described["status"], run, chunks, execution_error(described),
                     time.monotonic() - began, summarise(getattr(cloud, "metric_records", [])))


def run_request(start: date | None, end: date | None, *, chunk_days: int | None, max_chunk_rows: int | None,
                max_concurrency: int | None, trigger: str, executor: str | None,
                stale: bool = False) -> dict[str, Any]:
    """The state machine input of a run (omitted dates select the scheduled default window, or with ``stale``
    the lookback horizon)."""
    payload: dict[str, Any] = {"trigger": trigger}
    if stale:
        payload["stale"] = True
    if executor:  # else the execution itself (ValidateConfig records its name)
        payload["executor"] = executor
    if start and end:
        payload.update(start_date=start.isoformat(), end_date=end.isoformat())
    for key, value in (("chunk_days", chunk_days), ("max_chunk_rows", max_chunk_rows),
                       ("max_concurrency", max_concurrency)):
        if value is not None:
            payload[key] = value
    return payload
