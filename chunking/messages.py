"""The shapes that cross a boundary, validated: the state machine's input and the chunk queue's messages.

Dates are strict ISO ``YYYY-MM-DD``; unknown fields are refused; errors become one line."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from chunking.errors import InputError, PermanentError
from chunking.settings import MAX_CONCURRENCY_LIMIT

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_iso_date(value: Any, what: str = "date") -> date:
    """A strict ISO date (``YYYY-MM-DD``), or :class:`InputError` saying what is wrong."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise InputError(f"{what} must be an ISO date YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InputError(f"{what} is not a valid date: {value!r} ({exc})") from None


def _iso_date(value: Any) -> date:
    try:
        return parse_iso_date(value)
    except InputError as exc:
        raise ValueError(str(exc)) from None


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


def one_line(exc: ValidationError) -> str:
    """A pydantic error as one line: ``field: problem; field: problem``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


class RunRequest(BaseModel):
    """The input of one state machine execution (a scheduled run, a backfill, or a redrive)."""

    model_config = ConfigDict(extra="forbid")

    start_date: IsoDate | None = None
    end_date: IsoDate | None = None
    chunk_days: int | None = Field(default=None, ge=1, le=366)
    max_chunk_rows: int | None = Field(default=None, ge=1)
    max_concurrency: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY_LIMIT)
    trigger: str = Field(default="manual", min_length=1, max_length=40)
    executor: str | None = Field(default=None, max_length=200)
    redrive_run_id: int | None = Field(default=None, ge=1)
    redrive_chunk_ids: list[int] | None = None
    stale: bool = False  # recompute only the stale and never-computed days of the window (default: the lookback)

    @model_validator(mode="after")
    def _window(self) -> RunRequest:
        if (self.start_date is None) != (self.end_date is None):
            raise ValueError("give both start_date and end_date, or neither (the scheduled default window)")
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        if self.redrive_run_id is not None and self.start_date is not None:
            raise ValueError("a redrive takes its window from the run, not from start_date/end_date")
        if self.redrive_run_id is not None and self.stale:
            raise ValueError("a redrive re-processes its run's chunks; stale applies to new runs only")
        return self

    @classmethod
    def parse(cls, payload: Any) -> RunRequest:
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            raise InputError(f"invalid run request: {one_line(exc)}") from None


class ChunkMessage(BaseModel):
    """A chunk-queue message: one date range of one run, and the task token of the waiting Map item."""

    model_config = ConfigDict(extra="forbid")

    run_id: int = Field(ge=1)
    chunk_id: int = Field(ge=1)
    chunk_start: IsoDate
    chunk_end: IsoDate
    correlation_id: str = Field(min_length=1, max_length=200)
    task_token: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _range(self) -> ChunkMessage:
        if self.chunk_end < self.chunk_start:
            raise ValueError(f"chunk_end {self.chunk_end} is before chunk_start {self.chunk_start}")
        return self

    @classmethod
    def parse_body(cls, body: str) -> ChunkMessage:
        """Parse an SQS body; anything malformed is a :class:`PermanentError` (no retry can fix it)."""
        try:
            payload = json.loads(body)
        except (TypeError, ValueError):
            raise PermanentError(f"malformed chunk message: body is not JSON: {str(body)[:80]!r}") from None
        if not isinstance(payload, dict):
            raise PermanentError("malformed chunk message: body is not a JSON object")
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            raise PermanentError(f"malformed chunk message: {one_line(exc)}") from None

    def key(self) -> dict[str, Any]:
        """What the idempotency layer sees (no token: a redelivery carries the same chunk, maybe a new token)."""
        return {"run_id": self.run_id, "chunk_id": self.chunk_id, "chunk_start": self.chunk_start.isoformat(),
                "chunk_end": self.chunk_end.isoformat()}


def task_token_of(body: str) -> str | None:
    """The task token of a message, even a malformed one, so its Map item can be failed at once."""
    try:
        payload = json.loads(body)
    except (TypeError, ValueError):
        return None
    token = payload.get("task_token") if isinstance(payload, dict) else None
    return token if isinstance(token, str) and token else None


def correlation_of(body: str) -> dict[str, Any]:
    """The ids a message carries for logs and metrics (what can be read of it, even when malformed)."""
    try:
        payload = json.loads(body)
    except (TypeError, ValueError):
        return {}
    if not isinstance(payload, dict):
        return {}
    return {k: payload[k] for k in ("correlation_id", "run_id", "chunk_id")
            if isinstance(payload.get(k), str | int) and not isinstance(payload.get(k), bool)}
