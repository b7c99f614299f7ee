"""Settings: one frozen pydantic model, the single source of every setting's variable, default and bounds, built
once from the environment at the edge (handler cold start, CLI).

The core never reads ``os.environ``; it receives a :class:`Settings` or plain values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo

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


def _env(name: str, default: Any = None, **bounds: Any) -> Any:
    """A setting: its environment variable, its default and its bounds, declared once (on the field)."""
    return Field(default, json_schema_extra={"env": name}, **bounds)


class Settings(BaseModel):
    """Every tunable of the pipeline, with its environment variable, default and bounds; defaults are safe for a
    nightly run. Frozen; built once from the environment at the edge (:meth:`from_env`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str | None = _env(DATABASE_URL)
    db_secret_arn: str | None = _env(DB_SECRET_ARN)
    db_host: str | None = _env(DB_HOST)  # complete a secret that lacks them (an RDS-managed master secret)
    db_port: int | None = _env(DB_PORT, ge=1, le=65535)
    db_name: str | None = _env(DB_NAME)
    environment: str = _env(ENVIRONMENT, "local")
    chunk_queue_url: str | None = _env(CHUNK_QUEUE_URL)
    chunk_dlq_url: str | None = _env(CHUNK_DLQ_URL)
    idempotency_table: str | None = _env(IDEMPOTENCY_TABLE)
    max_window_days: int = _env(MAX_WINDOW_DAYS, 366, ge=1)
    chunk_days: int = _env(CHUNK_DAYS, 31, ge=1)
    max_chunk_rows: int | None = _env(MAX_CHUNK_ROWS, ge=1)  # None: adaptive, sized from measured throughput
    target_chunk_seconds: int = _env(TARGET_CHUNK_SECONDS, 120, ge=1)
    max_concurrency: int = _env(MAX_CONCURRENCY, 4, ge=1, le=MAX_CONCURRENCY_LIMIT)
    max_receive_count: int = _env(MAX_RECEIVE_COUNT, 5, ge=1)
    timeout_margin_ms: int = _env(TIMEOUT_MARGIN_MS, 15_000, ge=0)
    worker_timeout_s: int = _env(WORKER_TIMEOUT_S, 300, ge=1, le=WORKER_TIMEOUT_LIMIT_S)
    retry_base_ms: int = _env(RETRY_BASE_MS, 5_000, ge=0)
    retry_max_ms: int = _env(RETRY_MAX_MS, 300_000, ge=0, le=43_200_000)  # SQS's longest visibility timeout
    chunk_timeout_s: int | None = _env(CHUNK_TIMEOUT_S, ge=1)  # None: derived (chunk_timeout_seconds)
    default_window_days: int = _env(DEFAULT_WINDOW_DAYS, 7, ge=1)
    timezone: str = _env(TIMEZONE, "UTC")
    heartbeat_interval_s: int = _env(HEARTBEAT_INTERVAL_S, 60, ge=1, le=3600)
    # the local emulator only: its state machine's Retry waits are multiplied by it
    local_retry_scale: float = _env(LOCAL_RETRY_SCALE, 1.0, ge=0.0, le=1.0)
    # a stale run's default range: corrections arrive for about a quarter (docs/freshness.md)
    lookback_days: int = _env(LOOKBACK_DAYS, 90, ge=1)
    fault_chunks: frozenset[date] = _env(FAULT_CHUNKS, frozenset())

    @model_validator(mode="after")
    def _no_fault_drill_in_production(self) -> Settings:
        if self.fault_chunks and self.environment.lower() in PRODUCTION_ENVIRONMENTS:
            raise ValueError(f"setting {FAULT_CHUNKS} (a fault drill) cannot be set where {ENVIRONMENT} is "
                             f"{self.environment!r}")
        return self

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(_one_line(exc)) from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from an environment mapping (``os.environ`` when none is given): a variable that is
        unset or empty takes the default; ``0`` for an optional limit (ETL_MAX_CHUNK_ROWS, ETL_CHUNK_TIMEOUT_S,
        DB_PORT) means none. A bad value is one :class:`ConfigError` line naming the variable."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            variable = _variable(field)
            raw = (env.get(variable) or "").strip()
            if not raw:
                continue
            if name == "fault_chunks":
                values[name] = parse_fault_chunks(raw)
            elif name in OPTIONAL_LIMITS and raw == "0":
                continue
            else:
                values[name] = raw
        return cls(**values)

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


OPTIONAL_LIMITS = frozenset({"max_chunk_rows", "chunk_timeout_s", "db_port"})


def _variable(field: FieldInfo) -> str:
    extra = field.json_schema_extra
    assert isinstance(extra, dict)
    return str(extra["env"])


def bounds_of(name: str) -> tuple[float | None, float | None]:
    """The (minimum, maximum) a setting allows, as its field declares them (None: unbounded)."""
    low = high = None
    for rule in Settings.model_fields[name].metadata:
        low = getattr(rule, "ge", low)
        high = getattr(rule, "le", high)
    return low, high


def _one_line(exc: ValidationError) -> str:
    """A settings error as one line naming the environment variable: what it must be, and what it was."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    if name not in Settings.model_fields:
        return str(error["msg"]).removeprefix("Value error, ")
    variable, given = _variable(Settings.model_fields[name]), error.get("input")
    kind = error["type"]
    if kind in ("int_parsing", "int_from_float"):
        return f"setting {variable} must be an integer, got {given!r}"
    if kind == "float_parsing":
        return f"setting {variable} must be a number, got {given!r}"
    if kind in ("greater_than_equal", "less_than_equal"):
        low, high = bounds_of(name)
        bound = f"between {_number(low)} and {_number(high)}" if high is not None else f"at least {_number(low)}"
        return f"setting {variable} must be {bound}, got {given}"
    return f"setting {variable}: {str(error['msg']).removeprefix('Value error, ')}"


def _number(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


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
