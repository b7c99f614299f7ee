"""Settings: one frozen object built once from the environment, at the edge (handler cold start, CLI).

The core never reads ``os.environ``; it receives a :class:`Settings` or plain values.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from datetime import date
from functools import cache

from chunking.errors import ConfigError

# Environment variable names, in one place.
DATABASE_URL = "DATABASE_URL"
DB_SECRET_ARN = "DB_SECRET_ARN"
DB_HOST = "DB_HOST"
DB_PORT = "DB_PORT"
DB_NAME = "DB_NAME"
ENVIRONMENT = "ETL_ENVIRONMENT"
CHUNK_QUEUE_URL = "CHUNK_QUEUE_URL"
CHUNK_DLQ_URL = "CHUNK_DLQ_URL"
IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE"
MAX_WINDOW_DAYS = "ETL_MAX_WINDOW_DAYS"
CHUNK_DAYS = "ETL_CHUNK_DAYS"
MAX_CHUNK_ROWS = "ETL_MAX_CHUNK_ROWS"
MAX_CONCURRENCY = "ETL_MAX_CONCURRENCY"
MAX_RECEIVE_COUNT = "ETL_MAX_RECEIVE_COUNT"
TIMEOUT_MARGIN_MS = "ETL_TIMEOUT_MARGIN_MS"
WORKER_TIMEOUT_S = "ETL_WORKER_TIMEOUT_S"
RETRY_BASE_MS = "ETL_RETRY_BASE_MS"
RETRY_MAX_MS = "ETL_RETRY_MAX_MS"
CHUNK_TIMEOUT_S = "ETL_CHUNK_TIMEOUT_S"
TARGET_CHUNK_SECONDS = "ETL_TARGET_CHUNK_SECONDS"
FAULT_CHUNKS = "ETL_FAULT_CHUNKS"
HEARTBEAT_INTERVAL_S = "ETL_HEARTBEAT_INTERVAL_S"
LOCAL_RETRY_SCALE = "ETL_LOCAL_RETRY_SCALE"
DEFAULT_WINDOW_DAYS = "ETL_DEFAULT_WINDOW_DAYS"
TIMEZONE = "ETL_TIMEZONE"
LOOKBACK_DAYS = "ETL_LOOKBACK_DAYS"


PRODUCTION_ENVIRONMENTS = frozenset({"prod", "production"})

# Bounds, in one place: the settings below, the state machine input (messages.RunRequest), the run context
# (pipeline.RunContext) and the CLI's options read them from here.
MAX_CONCURRENCY_LIMIT = 40  # the Map's MaxConcurrencyPath, and local workers; a Lambda's share of RDS connections
WORKER_TIMEOUT_LIMIT_S = 900  # Lambda's longest timeout


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every tunable of the pipeline; defaults are safe for a nightly run."""

    database_url: str | None = None
    db_secret_arn: str | None = None
    db_host: str | None = None  # complete a secret that lacks them (an RDS-managed master secret)
    db_port: int | None = None
    db_name: str | None = None
    environment: str = "local"
    chunk_queue_url: str | None = None
    chunk_dlq_url: str | None = None
    idempotency_table: str | None = None
    max_window_days: int = 366
    chunk_days: int = 31
    max_chunk_rows: int | None = None  # None: adaptive, sized from measured throughput
    target_chunk_seconds: int = 120
    max_concurrency: int = 4
    max_receive_count: int = 5
    timeout_margin_ms: int = 15_000
    worker_timeout_s: int = 300
    retry_base_ms: int = 5_000
    retry_max_ms: int = 300_000
    chunk_timeout_s: int | None = None
    default_window_days: int = 7
    timezone: str = "UTC"
    heartbeat_interval_s: int = 60
    local_retry_scale: float = 1.0  # the local emulator only: its state machine's Retry waits are multiplied by it
    lookback_days: int = 90  # a stale run's default range: corrections arrive for about a quarter (docs/freshness.md)
    fault_chunks: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if self.fault_chunks and self.environment.lower() in PRODUCTION_ENVIRONMENTS:
            raise ConfigError(f"setting {FAULT_CHUNKS} (a fault drill) cannot be set where {ENVIRONMENT} is "
                              f"{self.environment!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from an environment mapping (``os.environ`` when none is given)."""
        env = os.environ if env is None else env
        return cls(
            database_url=env.get(DATABASE_URL) or None,
            db_secret_arn=env.get(DB_SECRET_ARN) or None,
            db_host=env.get(DB_HOST) or None,
            db_port=_int(env, DB_PORT, 0, minimum=0, maximum=65535) or None,
            db_name=env.get(DB_NAME) or None,
            environment=env.get(ENVIRONMENT) or cls.environment,
            chunk_queue_url=env.get(CHUNK_QUEUE_URL) or None,
            chunk_dlq_url=env.get(CHUNK_DLQ_URL) or None,
            idempotency_table=env.get(IDEMPOTENCY_TABLE) or None,
            max_window_days=_int(env, MAX_WINDOW_DAYS, cls.max_window_days, minimum=1),
            chunk_days=_int(env, CHUNK_DAYS, cls.chunk_days, minimum=1),
            max_chunk_rows=_int(env, MAX_CHUNK_ROWS, 0, minimum=0) or None,
            target_chunk_seconds=_int(env, TARGET_CHUNK_SECONDS, cls.target_chunk_seconds, minimum=1),
            max_concurrency=_int(env, MAX_CONCURRENCY, cls.max_concurrency, minimum=1, maximum=MAX_CONCURRENCY_LIMIT),
            max_receive_count=_int(env, MAX_RECEIVE_COUNT, cls.max_receive_count, minimum=1),
            timeout_margin_ms=_int(env, TIMEOUT_MARGIN_MS, cls.timeout_margin_ms, minimum=0),
            worker_timeout_s=_int(env, WORKER_TIMEOUT_S, cls.worker_timeout_s, minimum=1,
                                  maximum=WORKER_TIMEOUT_LIMIT_S),
            retry_base_ms=_int(env, RETRY_BASE_MS, cls.retry_base_ms, minimum=0),
            retry_max_ms=_int(env, RETRY_MAX_MS, cls.retry_max_ms, minimum=0, maximum=43_200_000),
            chunk_timeout_s=_int(env, CHUNK_TIMEOUT_S, 0, minimum=0) or None,
            default_window_days=_int(env, DEFAULT_WINDOW_DAYS, cls.default_window_days, minimum=1),
            timezone=env.get(TIMEZONE) or cls.timezone,
            heartbeat_interval_s=_int(env, HEARTBEAT_INTERVAL_S, cls.heartbeat_interval_s, minimum=1, maximum=3600),
            local_retry_scale=_float(env, LOCAL_RETRY_SCALE, cls.local_retry_scale, minimum=0.0, maximum=1.0),
            lookback_days=_int(env, LOOKBACK_DAYS, cls.lookback_days, minimum=1),
            fault_chunks=parse_fault_chunks(env.get(FAULT_CHUNKS, "")),
        )

    def chunk_timeout_seconds(self, max_concurrency: int) -> int:
        """How long a Map item waits for its chunk's callback before giving up on it: ``ETL_CHUNK_TIMEOUT_S``
        when set, else every delivery with its worst backoff, plus the time the chunk may queue behind the
        others in flight. The ledger, not this wait, decides whether the chunk succeeded."""
        if self.chunk_timeout_s:
            return self.chunk_timeout_s
        per_attempt = self.worker_timeout_s + self.retry_max_ms // 1000
        return self.max_receive_count * per_attempt + max_concurrency * self.worker_timeout_s + 60

    def chunk_heartbeat_seconds(self) -> int:
        """How long a Map item waits between two signs of life of its chunk before it counts the worker as dead
        and sends the chunk again: the longest retry backoff (no heartbeat while a message waits to come back)
        and three heartbeat intervals (a worker sends one every ``ETL_HEARTBEAT_INTERVAL_S`` while it works).
        With the defaults, 8 minutes, against 71 for the whole chunk timeout."""
        return min(self.chunk_timeout_seconds(1), -(-self.retry_max_ms // 1000) + 3 * self.heartbeat_interval_s)

    def require(self, *fields: str) -> None:
        """Fail with one clear line naming every required setting that is missing."""
        missing = [_ENV_NAMES[name] for name in fields if not getattr(self, name)]
        if missing:
            raise ConfigError(f"missing setting{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")

    def require_database(self) -> None:
        if not (self.database_url or self.db_secret_arn):
            raise ConfigError(f"missing setting: {DATABASE_URL} or {DB_SECRET_ARN}")


_ENV_NAMES = {
    "database_url": DATABASE_URL,
    "db_secret_arn": DB_SECRET_ARN,
    "chunk_queue_url": CHUNK_QUEUE_URL,
    "chunk_dlq_url": CHUNK_DLQ_URL,
    "idempotency_table": IDEMPOTENCY_TABLE,
}


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"setting {name} must be an integer, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(f"setting {name} must be {bound}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float, maximum: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"setting {name} must be a number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"setting {name} must be between {minimum} and {maximum}, got {value}")
    return value


def parse_fault_chunks(raw: str) -> frozenset[date]:
    """Parse ``ETL_FAULT_CHUNKS``: a comma-separated list of ISO dates (chunk start dates to fail)."""
    dates = set()
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            dates.add(date.fromisoformat(part))
        except ValueError:
            raise ConfigError(f"setting {FAULT_CHUNKS} must list ISO dates (YYYY-MM-DD), got {part!r}") from None
    return frozenset(dates)


@cache
def lambda_settings() -> Settings:
    """The settings of a Lambda container, read once at cold start."""
    return Settings.from_env()
