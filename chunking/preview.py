"""Plan preview: what a run over a window would do and cost, before it runs (read-only).

The chunks come from the same planner the PlanChunks step uses, sized the same way (measured throughput
or fixed caps); rows per day are counted in ``analytics.visits`` (non-cancelled), which staging will
trim by the few ineligible visits."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Any

from chunking import db, freshness, tasks
from chunking.db import Connection
from chunking.planner import Budget, Chunk, Sizing, budget, plan_window
from chunking.settings import Settings

# Prices assumed by the cost estimate: AWS us-east-1, on-demand, as published in 2026.
PRICES = {
    "lambda_gb_second_arm64": 0.0000133334,
    "lambda_request": 0.20 / 1_000_000,
    "state_transition": 0.025 / 1_000,
    "sqs_request": 0.40 / 1_000_000,
    "dynamodb_write_unit": 0.625 / 1_000_000,
}
FUNCTION_MEMORY_GB = 0.5  # template.yaml: MemorySize 512 for every function
STEP_INVOCATIONS = 4  # ValidateConfig, StageVisits, PlanChunks, ReconcileRun
STEP_SECONDS = 1.0  # each, besides staging
STAGE_ROWS_PER_SECOND = 270_000.0  # staging throughput measured at 60 days (docs/benchmarks.md)
TRANSITIONS_PER_RUN = 10  # the states outside the Map
TRANSITIONS_PER_CHUNK = 2  # the Map iteration and its task
SQS_REQUESTS_PER_CHUNK = 3  # send, receive, delete (the event source mapping's idle polling is extra)
DYNAMODB_WRITES_PER_CHUNK = 2  # the idempotency record: in progress, then completed


@dataclasses.dataclass(frozen=True)
class Cost:
    lambda_gb_seconds: float
    lambda_requests: int
    state_transitions: int
    sqs_requests: int
    dynamodb_writes: int

    def dollars(self) -> dict[str, float]:
        return {
            "lambda": self.lambda_gb_seconds * PRICES["lambda_gb_second_arm64"]
            + self.lambda_requests * PRICES["lambda_request"],
            "step_functions": self.state_transitions * PRICES["state_transition"],
            "sqs": self.sqs_requests * PRICES["sqs_request"],
            "dynamodb": self.dynamodb_writes * PRICES["dynamodb_write_unit"],
        }

    @property
    def total(self) -> float:
        return sum(self.dollars().values())


def estimate_cost(chunks: list[Chunk]) -> Cost:
    """What one run of this plan costs in AWS, from its chunks' estimated durations."""
    rows = sum(c.estimated_rows for c in chunks)
    chunk_seconds = sum((c.estimated_ms or 0) / 1000 for c in chunks)
    step_seconds = STEP_INVOCATIONS * STEP_SECONDS + rows / STAGE_ROWS_PER_SECOND
    return Cost(lambda_gb_seconds=(chunk_seconds + step_seconds) * FUNCTION_MEMORY_GB,
                lambda_requests=STEP_INVOCATIONS + len(chunks),
                state_transitions=TRANSITIONS_PER_RUN + TRANSITIONS_PER_CHUNK * len(chunks),
                sqs_requests=SQS_REQUESTS_PER_CHUNK * len(chunks),
                dynamodb_writes=DYNAMODB_WRITES_PER_CHUNK * len(chunks))


@dataclasses.dataclass(frozen=True)
class Preview:
    window_start: date
    window_end: date
    visits: int
    sizing: Sizing
    chunks: list[Chunk]
    coverage: list[dict[str, Any]]  # per chunk: days covered before, the oldest coverage, by which runs
    budget: Budget
    cost: Cost
    stale_days: list[Any] | None = None  # a stale run's preview: the days it would take (freshness.DayFreshness)

    def as_dict(self) -> dict[str, Any]:
        return {
            **({"stale_days": [d.as_json() for d in self.stale_days]} if self.stale_days is not None else {}),
            "window_start": self.window_start.isoformat(), "window_end": self.window_end.isoformat(),
            "visits": self.visits, "sizing": self.sizing.as_dict(),
            "chunks": [{**c.as_item(), "days": c.days,
                        **({"owned_days": [d.isoformat() for d in c.owned]} if c.owned is not None else {}),
                        "estimated_rows": c.estimated_rows,
                        "estimated_ms": c.estimated_ms, **cover} for c, cover in zip(self.chunks, self.coverage,
                                                                                     strict=True)],
            "budget": {"chunks": self.budget.chunks, "max_chunks": self.budget.max_chunks,
                       "history_events": self.budget.history_events, "max_history_events": 25_000,
                       "map_input_bytes": self.budget.map_input_bytes, "max_payload_bytes": 256 * 1024,
                       "fits": self.budget.fits},
            "cost": {**dataclasses.asdict(self.cost), "dollars": self.cost.dollars(), "total": self.cost.total,
                     "prices": PRICES, "memory_gb": FUNCTION_MEMORY_GB},
        }


def preview(conn: Connection, settings: Settings, window_start: date, window_end: date, *, chunk_days: int,
            fixed_rows: int | None, concurrency: int, stale: bool = False) -> Preview:
    """The plan of a run over the window (changes nothing); with ``stale``, of a stale run: only the days that are
    not FRESH now, each with why (``stale_days``)."""
    window = {"window_start": window_start, "window_end": window_end}
    with db.read(conn):
        loads = {r["visit_date"]: int(r["rows"]) for r in db.fetch_all(conn, "tasks/count_visits_by_day", window)}
        sizing = tasks.plan_sizing(conn, settings, chunk_days=chunk_days, fixed_rows=fixed_rows,
                                   concurrency=concurrency)
    stale_days = None
    if stale:  # its own reads (freshness.stale_plan)
        stale_days, chunks = freshness.stale_plan(conn, window_start, window_end, sizing)
        loads = {day: n for day, n in loads.items() if day in {d.date for d in stale_days}}
    else:
        chunks = plan_window(window_start, window_end, loads, sizing)
    with db.read(conn):
        days = db.fetch_all(conn, "tasks/day_coverage", window)
    return Preview(window_start, window_end, sum(loads.values()), sizing, chunks,
                   [_coverage(c, days) for c in chunks], budget(chunks), estimate_cost(chunks), stale_days)


def _coverage(chunk: Chunk, days: list[dict[str, Any]]) -> dict[str, Any]:
    owned = set(chunk.computed_days())
    mine = [d for d in days if d["day"] in owned]
    covered = [d for d in mine if d["run_id"] is not None]
    oldest: datetime | None = min((d["finished_at"] for d in covered), default=None)
    return {"days_covered": len(covered), "covered_by_runs": sorted({d["run_id"] for d in covered}),
            "oldest_coverage": oldest.isoformat() if oldest else None}
