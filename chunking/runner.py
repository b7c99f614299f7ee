"""Drive one execution (a run or a redrive) and follow it through the ledger until it ends.

The emulated cloud (:class:`chunking.emulator.LocalCloud`) and the deployed one share one interface,
so ``run``/``redrive`` behave the same locally and in AWS; the ledger is what both report from."""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any, Protocol, Self

from chunking import ledger
from chunking.console import Progress
from chunking.db import Connection
from chunking.errors import TransientError, step_error_message
from chunking.ledger import ChunkStatus, RunStatus
from chunking.observability import summarise

HEARTBEAT_EVERY_S = 5.0


class Cloud(Protocol):
    """Where executions run: :class:`chunking.emulator.LocalCloud` (here) or :class:`chunking.aws.AwsCloud`."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...
    def start_workers(self) -> None: ...
    def stop_taking_chunks(self) -> None: ...
    def stop_workers(self) -> None: ...
    def start_execution(self, name: str, payload: dict[str, Any]) -> str: ...
    def wait(self, execution_arn: str, on_tick: Callable[[], None] | None = None,
             interval_s: float = 0.2) -> dict[str, Any]: ...
    def dead_letters(self, *, delete: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]: ...
    @property
    def metric_records(self) -> list[dict[str, Any]]: ...


@dataclasses.dataclass
class RunReport:
    execution_name: str
    execution_status: str
    run: ledger.Run | None
    chunks: list[ledger.Chunk]
    error: str | None
    seconds: float
    metrics: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # EMF, summarised (local)

    @property
    def succeeded(self) -> bool:
        return self.run is not None and self.run.status is RunStatus.SUCCEEDED and self.execution_status == "SUCCEEDED"


def wait_for(describe: Callable[[str], dict[str, Any]], execution_arn: str,
             on_tick: Callable[[], None] | None, interval_s: float,
             wake: Callable[[float], object] | None = None) -> dict[str, Any]:
    """Poll an execution until it is no longer RUNNING, calling ``on_tick`` between polls. Between polls it
    sleeps ``interval_s``, or, given ``wake``, until ``wake(interval_s)`` returns (the emulator returns at its
    next event, so a local run is followed without a fixed sleep)."""
    while True:
        described = describe(execution_arn)
        if described["status"] != "RUNNING":
            return described
        if on_tick:
            on_tick()
        (wake or time.sleep)(interval_s)


def execution_name(kind: str, *parts: object) -> str:
    """A readable, unique execution name (Step Functions allows 80 characters, no colons or spaces)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return "-".join([kind, *map(str, parts), stamp, secrets.token_hex(2)])[:80]


def execution_error(described: dict[str, Any]) -> str | None:
    """The readable cause of an execution that did not succeed."""
    if described.get("status") == "SUCCEEDED":
        return None
    return step_error_message(described.get("error") or described.get("status"), described.get("cause"))


class RunStopped(Exception):
    """A signal stopped the local driver of a run; the run is marked STOPPED and a redrive continues it."""

    def __init__(self, run_id: int | None, signal_name: str) -> None:
        super().__init__(f"stopped by {signal_name}")
        self.run_id, self.signal_name = run_id, signal_name


class _Signalled(BaseException):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


STOP_SIGNALS = ("SIGTERM", "SIGHUP")  # SIGINT already raises KeyboardInterrupt
RECONNECT_BACKOFF_S = (0.5, 1.0, 2.0, 4.0)
FINAL_READ_PATIENCE_S = 60.0  # after the execution ends, how long the driver waits for the database to come back


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    """While a run is driven from here, SIGTERM and SIGHUP stop it the way Ctrl-C does (only in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:  # noqa: ARG001 - the signal module's signature
        raise _Signalled(signal.Signals(signum).name)

    previous = {name: signal.signal(getattr(signal, name), handler) for name in STOP_SIGNALS
                if hasattr(signal, name)}
    try:
        yield
    finally:
        for name, old in previous.items():
            signal.signal(getattr(signal, name), old)


class _Ledger:
    """The driver's view of the ledger: one connection, reopened with backoff when the database goes away, so
    that a restart of the database never stops the driver (only the ledger reads are skipped meanwhile)."""

    def __init__(self, conn: Connection, connect: Callable[[], Connection] | None) -> None:
        self.conn, self._connect = conn, connect
        self.down_since: float | None = None
        self._next_try = 0.0
        self._tries = 0

    def attempt(self, work: Callable[[Connection], Any]) -> Any:
        """``work(conn)``, or None when the database cannot be reached now (retried at a later call)."""
        now = time.monotonic()
        if self.down_since is not None and now < self._next_try:
            return None
        try:
            if self.down_since is not None and self._connect is not None:
                with contextlib.suppress(Exception):
                    self.conn.close()
                self.conn = self._connect()
            result = work(self.conn)
        except TransientError:
            if self._connect is None:
                raise
            self.down_since = self.down_since or now
            self._next_try = now + RECONNECT_BACKOFF_S[min(self._tries, len(RECONNECT_BACKOFF_S) - 1)]
            self._tries += 1
            return None
        self.down_since, self._tries = None, 0
        return result

    def patiently(self, work: Callable[[Connection], Any], patience_s: float) -> tuple[bool, Any]:
        """``work(conn)``, trying again until it succeeds or ``patience_s`` has passed: (succeeded, result)."""
        deadline = time.monotonic() + patience_s
        while True:
            result = self.attempt(work)
            if self.down_since is None:
                return True, result
            if time.monotonic() >= deadline:
                return False, None
            time.sleep(0.2)


class _Watch:
    """What the driver shows while an execution runs: the run's chunks from the ledger, and its heartbeat."""

    def __init__(self, view: _Ledger, name: str, run_id: int | None, progress: Progress | None,
                 only_chunks: set[int] | None) -> None:
        self.view, self.name, self.run_id, self.progress, self.only_chunks = view, name, run_id, progress, only_chunks
        self.last_beat = 0.0

    def find_run(self, conn: Connection) -> int | None:
        found = ledger.find_run_by_execution(conn, self.name)
        return found.run_id if found else None

    def tick(self) -> None:
        if self.run_id is None:
            self.run_id = self.view.attempt(self.find_run)
        run_id = self.run_id
        if run_id is None:
            self._show_phase("starting")
            return
        if time.monotonic() - self.last_beat > HEARTBEAT_EVERY_S and self.view.attempt(self._beat):
            self.last_beat = time.monotonic()
        if not self.progress:
            return
        chunks = self.view.attempt(lambda c: ledger.list_chunks(c, run_id))
        if chunks is None:
            self._show_phase("starting")
            return
        chunks = [c for c in chunks if c.live]
        if self.only_chunks is not None:  # a redrive: count only what it re-processes
            chunks = [c for c in chunks if c.chunk_id in self.only_chunks]
        states = [c.status for c in chunks]
        self.progress.update(states.count(ChunkStatus.SUCCEEDED), len(states), states.count(ChunkStatus.RUNNING),
                             states.count(ChunkStatus.FAILED), states.count(ChunkStatus.RETRYING),
                             phase="staging and planning" if not states else "", chunks=chunks)

    def _beat(self, conn: Connection) -> bool:
        assert self.run_id is not None
        ledger.touch_run(conn, self.run_id)
        return True

    def _show_phase(self, phase: str) -> None:
        if self.progress:
            self.progress.update(0, 0, 0, 0, phase=phase if self.view.down_since is None else
                                 "waiting for the database")


def follow(cloud: Cloud, conn: Connection, *, name: str, payload: dict[str, Any], run_id: int | None,
           progress: Progress | None, only_chunks: set[int] | None = None,
           connect: Callable[[], Connection] | None = None) -> RunReport:
    """Start the execution, show chunk progress from the ledger while it runs, and report its outcome.

    With ``connect``, a lost database connection is reopened with backoff and following goes on. A run whose
    execution ended without the ledger saying so (a step could not write during an outage) is closed FAILED
    with the execution's error. SIGINT, SIGTERM and SIGHUP stop a local run cleanly (:class:`RunStopped`)."""
    began = time.monotonic()
    ledger_view = _Ledger(conn, connect)
    watch = _Watch(ledger_view, name, run_id, progress, only_chunks)

    with _stop_signals():
        try:
            cloud.start_workers()
            arn = cloud.start_execution(name, payload)
            described = cloud.wait(arn, on_tick=watch.tick)
        except (KeyboardInterrupt, _Signalled) as stop:
            signal_name = stop.name if isinstance(stop, _Signalled) else "SIGINT"
            if progress:
                progress.finish()
            raise _stop(cloud, ledger_view, name, watch.run_id, signal_name) from None
    if progress:
        progress.finish()

    ok, found = ledger_view.patiently(lambda c: watch.find_run(c) if watch.run_id is None else watch.run_id,
                                      FINAL_READ_PATIENCE_S)
    known_run = found if ok else watch.run_id
    error = execution_error(described)
    if not ok:
        return RunReport(name, described["status"], None, [], _unreachable(error, known_run),
                         time.monotonic() - began, summarise(cloud.metric_records))

    def outcome(c: Connection) -> tuple[ledger.Run | None, list[ledger.Chunk]]:
        if known_run is None:
            return None, []
        run = ledger.find_run(c, known_run)
        if run is not None and run.running and described["status"] != "RUNNING" and run.driver == name:
            # the execution ended but the ledger still says RUNNING: a step could not record the end (an outage
            # outlasted its retries). The driver repairs it now, so no run is left claiming to be driven.
            ledger.close_run(c, known_run, RunStatus.FAILED, f"execution {name} ended {described['status']}: "
                             f"{error or 'no error given'}", driver=name)
            run = ledger.find_run(c, known_run)
        return run, ledger.list_chunks(c, known_run)

    ok, result = ledger_view.patiently(outcome, FINAL_READ_PATIENCE_S)
    if not ok:
        return RunReport(name, described["status"], None, [], _unreachable(error, known_run),
                         time.monotonic() - began, summarise(cloud.metric_records))
    run, chunks = result
    return RunReport(name, described["status"], run, chunks, error, time.monotonic() - began,
                     summarise(cloud.metric_records))


def _unreachable(error: str | None, run_id: int | None) -> str:
    what = f"run {run_id}" if run_id else "the run"
    return (f"the execution ended ({error or 'succeeded'}) but the database is unreachable, so {what}'s state is "
            f"unknown here; when it is back: etl-pipeline status" + (f" --run-id {run_id}" if run_id else ""))


def _stop(cloud: Cloud, view: _Ledger, name: str, run_id: int | None, signal_name: str) -> RunStopped:
    """Stop a local run on a signal: no new chunk is taken, what chunks run now is cancelled (rolled back), the
    run is marked STOPPED with the signal as its reason, and the workers are let go."""
    cloud.stop_taking_chunks()
    if run_id is None:
        run_id = view.attempt(lambda c: getattr(ledger.find_run_by_execution(c, name), "run_id", None))
    if run_id is not None:
        view.attempt(lambda c: ledger.cancel_chunk_statements(c, run_id))
        view.patiently(lambda c: ledger.close_run(c, run_id, RunStatus.STOPPED, f"stopped by {signal_name}"), 10.0)
    cloud.stop_workers()
    return RunStopped(run_id, signal_name)


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
