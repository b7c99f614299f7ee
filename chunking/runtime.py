"""What a Lambda container keeps between invocations: its settings, its database connection, its worker.

Built lazily at the first invocation (cold start), so importing a handler touches nothing, and the local
emulator and the tests can set the environment first."""

from __future__ import annotations

import threading
from typing import Any

from chunking.db import Budget, Connection, ConnectionCache, database_url_from_secret, set_budget
from chunking.drills import fault_drill
from chunking.liveness import ExecutionStatus
from chunking.settings import Settings, lambda_settings
from chunking.worker import ChunkWorker, container_worker

_connections = ConnectionCache()
_readers = ConnectionCache()  # a second connection, for a read beside the first's transaction
_dsn_lock = threading.Lock()


def settings() -> Settings:
    return lambda_settings()


def database(cfg: Settings, context: Any = None) -> Connection:
    """This container's connection, reused across invocations and checked before reuse. With the invocation's
    ``context``, every unit of work on it runs under the time the invocation has left (:class:`db.Budget`)."""
    return _budgeted(_connections.get(_dsn(cfg)), cfg, context)


def reader_database(cfg: Settings, context: Any = None) -> Connection:
    """This container's second connection (reused and checked like the first): StageVisits reads the source's
    fingerprints on it, in the staging's snapshot, while the first loads the staging."""
    return _budgeted(_readers.get(_dsn(cfg), "conflict-map-reader"), cfg, context)


def _dsn(cfg: Settings) -> str:
    cfg.require_database()
    dsn = cfg.database_url
    if not dsn:
        assert cfg.db_secret_arn
        with _dsn_lock:
            dsn = database_url_from_secret(cfg.db_secret_arn, {"host": cfg.db_host, "port": cfg.db_port,
                                                               "dbname": cfg.db_name})
    return dsn


def _budgeted(conn: Connection, cfg: Settings, context: Any) -> Connection:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    set_budget(conn, Budget(remaining, cfg.timeout_margin_ms) if remaining else None)
    return conn


def execution_status(state_machine_arn: Any) -> ExecutionStatus | None:
    """How Step Functions reports an execution of this state machine (for closing runs whose execution ended)."""
    if not isinstance(state_machine_arn, str) or ":stateMachine:" not in state_machine_arn:
        return None
    prefix = state_machine_arn.replace(":stateMachine:", ":execution:", 1)

    def status(execution_name: str) -> str:
        import boto3

        client = boto3.client("stepfunctions")
        return str(client.describe_execution(executionArn=f"{prefix}:{execution_name}")["status"])

    return status


def chunk_worker(context: Any) -> ChunkWorker:
    cfg = settings()
    # A Lambda execution environment (container) writes to its own log stream: that names the worker.
    worker = container_worker(lambda: ChunkWorker(
        cfg, lambda: database(cfg), worker_name=str(getattr(context, "log_stream_name", None) or "worker")[-60:],
        before_commit=fault_drill(cfg)))
    worker.register_lambda_context(context)
    return worker


def reset() -> None:
    """Forget the container's settings and this thread's connection (the emulator starts cold)."""
    lambda_settings.cache_clear()
    _connections.close()
    _readers.close()
