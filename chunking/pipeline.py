"""The steps of the state machine, as plain functions of (event, connection, settings).

The handlers in ``handlers/`` parse nothing themselves: they hand their event to one of these and
return what it returns. Each step's output is what the state machine carries to the next."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chunking import freshness, ledger, tasks
from chunking.db import Connection, require_schema
from chunking.errors import ConfigError, InputError, PermanentError, step_error_message
from chunking.liveness import ExecutionStatus
from chunking.messages import IsoDate, RunRequest, one_line
from chunking.settings import MAX_CONCURRENCY_LIMIT, Settings


class RunContext(BaseModel):
    """What every step after ValidateConfig receives as ``$.run``."""

    model_config = ConfigDict(extra="forbid")

    run_id: int = Field(ge=1)
    mode: Literal["run", "redrive"]
    window_start: IsoDate
    window_end: IsoDate
    stage_start: IsoDate
    stage_end: IsoDate
    chunk_days: int = Field(ge=1)
    max_chunk_rows: int | None = Field(default=None, ge=1)
    max_concurrency: int = Field(ge=1, le=MAX_CONCURRENCY_LIMIT)
    correlation_id: str
    chunk_timeout_seconds: int = Field(ge=1)
    chunk_heartbeat_seconds: int = Field(ge=1)
    redrive_chunk_ids: list[int] | None = None
    stale: bool = False  # only the days the run selected (etl.run_days) are staged and planned

    @classmethod
    def of(cls, event: Any) -> RunContext:
        if not isinstance(event, dict) or "run" not in event:
            raise PermanentError("step input must be an object with a 'run' field")
        try:
            return cls.model_validate(event["run"])
        except ValidationError as exc:
            raise PermanentError(f"invalid run context: {one_line(exc)}") from None

    def output(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"stale"} if not self.stale else None)  # plain runs as before


def default_window(now: datetime, timezone: str, days: int) -> tuple[date, date]:
    """The scheduled window: the last ``days`` days up to yesterday, in the pipeline's time zone."""
    try:
        today = now.astimezone(ZoneInfo(timezone)).date()
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"setting ETL_TIMEZONE is not a known time zone: {timezone!r}") from exc
    end = today - timedelta(days=1)
    return end - timedelta(days=days - 1), end


# The dates the pipeline can compute: staging reads a day before a window and PARTNER_DAYS after it, and
# every date must stay a valid date on both sides (Python's and PostgreSQL's).
FIRST_COMPUTABLE_DATE = date.min + timedelta(days=2)
LAST_COMPUTABLE_DATE = date.max - timedelta(days=tasks.PARTNER_DAYS + 2)


def check_window(start: date, end: date, max_days: int) -> None:
    """Refuse, before any run row exists, a window that is inverted, too long, or outside the computable dates."""
    for day in (start, end):
        if not FIRST_COMPUTABLE_DATE <= day <= LAST_COMPUTABLE_DATE:
            raise InputError(f"date {day} is outside the dates the pipeline can compute "
                             f"({FIRST_COMPUTABLE_DATE}..{LAST_COMPUTABLE_DATE})")
    if end < start:
        raise InputError(f"end date {end} is before start date {start}")
    days = (end - start).days + 1
    if days > max_days:
        raise InputError(f"window {start}..{end} spans {days} days, over the maximum of {max_days} "
                         "(ETL_MAX_WINDOW_DAYS); split the backfill into smaller windows")


def validate_config(event: Any, conn: Connection, settings: Settings,
                    execution_status: ExecutionStatus | None = None) -> dict[str, Any]:
    """ValidateConfig: check the request and the settings, then begin the run (or reopen it for a redrive).

    ``execution_status`` asks Step Functions how an execution stands: an active run whose execution has ended
    is closed (with the reason) instead of blocking this one."""
    if not isinstance(event, dict):
        raise InputError("ValidateConfig input must be an object")
    request = RunRequest.parse(event.get("request", {}))
    execution_name = str(event.get("execution_name") or "")
    if not execution_name:
        raise InputError("ValidateConfig input lacks execution_name")
    settings.require("chunk_queue_url")
    require_schema(conn)
    chunk_days = request.chunk_days or settings.chunk_days
    max_chunk_rows = request.max_chunk_rows or settings.max_chunk_rows
    max_concurrency = request.max_concurrency or settings.max_concurrency

    if request.redrive_run_id is not None:
        run = ledger.reopen_for_redrive(conn, request.redrive_run_id, request.executor or execution_name,
                                        driver=execution_name, max_concurrency=request.max_concurrency,
                                        execution_status=execution_status)
        max_concurrency = run.max_concurrency  # the run's own, unless this redrive set another
        chunk_days = request.chunk_days or run.chunk_days
        pending = ledger.unfinished_chunks(conn, run.run_id, request.redrive_chunk_ids)
        mode: Literal["run", "redrive"] = "redrive"
        if not pending and not request.redrive_chunk_ids and not ledger.list_chunks(conn, run.run_id):
            # it failed (or stopped) before its chunks were planned: the redrive stages and plans it afresh
            stage_start, stage_end, mode = run.window_start, run.window_end, "run"
        elif not pending:
            raise InputError(f"run {run.run_id} has no unfinished chunks to redrive")
        else:
            stage_start = min(c.chunk_start for c in pending)
            stage_end = max(c.chunk_end for c in pending)
    else:
        if request.start_date and request.end_date:
            start, end = request.start_date, request.end_date
        else:
            started = _execution_start(event.get("execution_start"))
            start, end = default_window(started, settings.timezone,
                                        settings.lookback_days if request.stale else settings.default_window_days)
        check_window(start, end, settings.max_window_days)
        run = ledger.begin_run(conn, execution_name=execution_name, trigger=request.trigger,
                               executor=request.executor or execution_name, window_start=start,
                               window_end=end, chunk_days=chunk_days, max_chunk_rows=max_chunk_rows,
                               max_concurrency=max_concurrency, execution_status=execution_status)
        if request.stale:
            freshness.select_stale_days(conn, run.run_id, run.window_start, run.window_end)
        stage_start, stage_end, mode = run.window_start, run.window_end, "run"

    context = RunContext(
        run_id=run.run_id, mode=mode, window_start=run.window_start, window_end=run.window_end,
        stage_start=stage_start, stage_end=stage_end, chunk_days=chunk_days, max_chunk_rows=max_chunk_rows,
        max_concurrency=max_concurrency, correlation_id=execution_name,
        chunk_timeout_seconds=settings.chunk_timeout_seconds(max_concurrency),
        chunk_heartbeat_seconds=settings.chunk_heartbeat_seconds(),
        redrive_chunk_ids=request.redrive_chunk_ids, stale=request.stale or bool(run.stale))
    return context.output()


def _execution_start(raw: Any) -> datetime:
    if not raw:
        raise InputError("ValidateConfig input lacks execution_start (needed for the default window)")
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"execution_start is not an ISO timestamp: {raw!r}") from None


def stage(event: Any, conn: Connection, reader: Callable[[], Connection] | None = None) -> dict[str, Any]:
    """StageVisits (Task 01) over the run's staging range; ``reader``: a second connection, for the fingerprints
    (``tasks.stage_visits``)."""
    run = RunContext.of(event)
    days = freshness.stage_selection(conn, run.run_id, redrive=run.mode == "redrive",
                                     chunk_ids=run.redrive_chunk_ids) if run.stale else None
    result = freshness.in_snapshot(lambda: tasks.stage_visits(conn, run.run_id, run.stage_start, run.stage_end,
                                                              days=days, reader=reader))
    return {"staged_rows": result.staged_rows, "owner_rows": result.owner_rows,
            "rejected_rows": result.rejected_rows, "rejections_written": result.rejections_written,
            "rejections_cleared": result.rejections_cleared}


def plan(event: Any, conn: Connection, settings: Settings) -> dict[str, Any]:
    """PlanChunks: the chunk list the Map fans out (a fresh plan, or the unfinished chunks of a redrive)."""
    run = RunContext.of(event)
    sizing = tasks.plan_sizing(conn, settings, chunk_days=run.chunk_days, fixed_rows=run.max_chunk_rows,
                               concurrency=run.max_concurrency)
    if run.mode == "redrive":
        chunks = tasks.requeue_chunks(conn, run.run_id, run.redrive_chunk_ids, sizing)
    else:
        chunks = tasks.plan_run(conn, run, sizing,
                                selected=freshness.selected_days(conn, run.run_id) if run.stale else None)
    return {"count": len(chunks), "chunks": [c.as_item() for c in chunks],
            "estimated_rows": sum(c.estimated_rows for c in chunks),
            "estimated_ms": max((c.estimated_ms or 0 for c in chunks), default=0),
            "sizing": sizing.as_dict()}


def reconcile(event: Any, conn: Connection) -> dict[str, Any]:
    """Reconcile: the ledger decides the run's outcome."""
    run = RunContext.of(event)
    return tasks.reconcile_run(conn, run.run_id, driver=run.correlation_id).as_output()


def abort(event: Any, conn: Connection) -> dict[str, str]:
    """AbortRun: a step failed for good; mark the run FAILED naming the step, and say so to the Fail state."""
    run = RunContext.of(event)
    step = str(event.get("failed_step") or "unknown step")
    error = event.get("error") if isinstance(event.get("error"), dict) else {}
    cause = step_error_message(str(error.get("Error") or "Error"), error.get("Cause"))
    message = f"{step} failed: {cause}"
    tasks.abort_run(conn, run.run_id, message, driver=run.correlation_id)
    return {"Error": f"{step}Failed", "Cause": message}
