"""What a Lambda container keeps between invocations: its settings, its database connection, its worker.

Built lazily at the first invocation (cold start), so importing a handler touches nothing, and the local
emulator and the tests can set the environment first."""

from __future__ import annotations

import threading
from typing import Any

from chunking.db import Connection, ConnectionCache, database_url_from_secret
from chunking.settings import Settings, lambda_settings
from chunking.worker import ChunkWorker, container_worker

_connections = ConnectionCache()
_dsn_lock = threading.Lock()


def settings() -> Settings:
    return lambda_settings()


def database(cfg: Settings) -> Connection:
    """This container's connection, reused across invocations and checked before reuse."""
    cfg.require_database()
    dsn = cfg.database_url
    if not dsn:
        assert cfg.db_secret_arn
        with _dsn_lock:
            dsn = database_url_from_secret(cfg.db_secret_arn, {"host": cfg.db_host, "port": cfg.db_port,
                                                               "dbname": cfg.db_name})
    return _connections.get(dsn)


def chunk_worker(context: Any) -> ChunkWorker:
    cfg = settings()
    # A Lambda execution environment (container) writes to its own log stream: that names the worker.
    worker = container_worker(lambda: ChunkWorker(
        cfg, lambda: database(cfg), worker_name=str(getattr(context, "log_stream_name", None) or "worker")[-60:]))
    worker.register_lambda_context(context)
    return worker


def reset() -> None:
    """Forget the container's settings and this thread's connection (the emulator starts cold)."""
    lambda_settings.cache_clear()
    _connections.close()
