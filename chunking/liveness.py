"""Who drives a run, and whether that driver still lives: the one place that decides when a RUNNING run in the
ledger is really being driven.

A local run is driven by a process (``local:<host>:<pid>``): on the same host, a process that is gone is dead at
once. A run in AWS is driven by its Step Functions execution: an execution Step Functions reports as ended is
dead. Anything else cannot be told from here (``None``)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Protocol

LOCAL_PREFIX = "local:"

# Given an execution name, its Step Functions status (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, ...);
# raises when it cannot be asked.
ExecutionStatus = Callable[[str], str]


class Driven(Protocol):
    """What liveness reads of a run (:class:`chunking.ledger.Run`)."""

    @property
    def execution_name(self) -> str: ...
    @property
    def executor(self) -> str | None: ...
    @property
    def driver(self) -> str | None: ...


def local_executor() -> str:
    """Who drives a local run: ``local:<host>:<pid>``, so a later command can tell whether it still lives."""
    return f"{LOCAL_PREFIX}{socket.gethostname()}:{os.getpid()}"


def is_local(run: Driven) -> bool:
    """Was the run (or its latest redrive) driven from a workstation rather than by an execution in AWS?"""
    return str(run.executor or "").startswith(LOCAL_PREFIX)


def driver_alive(run: Driven, execution_status: ExecutionStatus | None = None) -> tuple[bool | None, str]:
    """Is whatever drives a RUNNING run alive? ``(True | False | None, why)``; ``None`` when it cannot be told."""
    executor = str(run.executor or run.driver or run.execution_name or "")
    if executor.startswith(LOCAL_PREFIX):
        _, host, pid = executor.split(":", 2)
        if host != socket.gethostname():
            return None, f"driven from another host ({host}), liveness unknown"
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False, f"its process {pid} is gone (it drove the run from this host)"
        except (PermissionError, ValueError):
            return True, f"its process {pid} exists"
        return True, f"its process {pid} is running"
    driver = str(run.driver or executor)
    if execution_status is None:
        return None, f"its execution {driver} cannot be checked from here"
    try:
        status = execution_status(driver)
    except Exception as exc:  # noqa: BLE001 - whatever the lookup raises, liveness is then unknown, and says why
        return None, f"its execution {driver} cannot be checked from here ({exc})"
    if status == "RUNNING":
        return True, f"its execution {driver} is RUNNING"
    return False, f"its execution {driver} is {status}"
