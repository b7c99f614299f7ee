"""Metrics, correlation and tracing, in one place: the names operators see, and how they are made.

Metrics are CloudWatch EMF lines written by Powertools. Each invocation gets its own isolated metric set
(``EphemeralMetrics``), so concurrent invocations in one process (the local emulator) never mix. The
dimensions are the environment and the function, never a run id (a dimension per run would be a new
metric per run); run and correlation ids travel as metadata."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

NAMESPACE = "ConflictMap"

# per chunk
CHUNK_DURATION_MS = "ChunkDurationMs"
VISITS_PROCESSED = "VisitsProcessed"
CONFLICTS_INSERTED = "ConflictsInserted"
CONFLICTS_UPDATED = "ConflictsUpdated"
CONFLICTS_RESOLVED = "ConflictsResolved"
CONFLICTS_REOPENED = "ConflictsReopened"
CHUNK_ATTEMPTS = "ChunkAttempts"
CHUNK_FAILED = "ChunkFailed"
CHUNK_DUPLICATES = "ChunkDuplicates"
# per run
RUN_DURATION_MS = "RunDurationMs"
CHUNKS_PLANNED = "ChunksPlanned"
RUN_SUCCEEDED = "RunSucceeded"
RUN_FAILED = "RunFailed"
ROWS_REJECTED = "RowsRejected"
ROWS_STAGED = "RowsStaged"

_COUNT_METRICS = {"inserted": CONFLICTS_INSERTED, "updated": CONFLICTS_UPDATED, "resolved": CONFLICTS_RESOLVED,
                  "reopened": CONFLICTS_REOPENED}


def invocation_metrics(function: str, environment: str, namespace: str | None = None) -> EphemeralMetrics:
    """An isolated metric set for one invocation, dimensioned by environment and function only."""
    metrics = EphemeralMetrics(namespace=namespace or _namespace())
    metrics.set_default_dimensions(environment=environment, function=function)
    return metrics


@cache
def _namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE


@contextlib.contextmanager
def published(metrics: EphemeralMetrics) -> Iterator[EphemeralMetrics]:
    """Flush the invocation's metrics when it ends, whether it succeeded or raised."""
    try:
        yield metrics
    finally:
        if metrics.metric_set:
            metrics.flush_metrics()


@contextlib.contextmanager
def step(function: str, event: Any, environment: str, logger: Any) -> Iterator[EphemeralMetrics]:
    """One state-machine step: its log lines keyed by the run, an isolated metric set correlated with the
    run, published when the step ends (whether it succeeded or raised)."""
    run: dict[str, Any] = event["run"] if isinstance(event, dict) and isinstance(event.get("run"), dict) else {}
    logger.append_keys(run_id=run.get("run_id"))
    metrics = invocation_metrics(function, environment)
    correlate(metrics, correlation_id=run.get("correlation_id"), run_id=run.get("run_id"))
    with published(metrics):
        yield metrics


def chunk_done(metrics: EphemeralMetrics, output: dict[str, Any], attempts: int) -> None:
    """A chunk finished: applied now (its figures), or found already applied (a duplicate)."""
    if output.get("status") == "DUPLICATE":
        metrics.add_metric(name=CHUNK_DUPLICATES, unit=MetricUnit.Count, value=1)
        return
    metrics.add_metric(name=CHUNK_DURATION_MS, unit=MetricUnit.Milliseconds, value=output["duration_ms"])
    metrics.add_metric(name=VISITS_PROCESSED, unit=MetricUnit.Count, value=output["visits"])
    for field, name in _COUNT_METRICS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=output[field])
    metrics.add_metric(name=CHUNK_ATTEMPTS, unit=MetricUnit.Count, value=attempts)
    metrics.add_metric(name=CHUNK_FAILED, unit=MetricUnit.Count, value=0)


def chunk_gave_up(metrics: EphemeralMetrics, attempts: int) -> None:
    metrics.add_metric(name=CHUNK_ATTEMPTS, unit=MetricUnit.Count, value=attempts)
    metrics.add_metric(name=CHUNK_FAILED, unit=MetricUnit.Count, value=1)


def run_ended(metrics: EphemeralMetrics, outcome: dict[str, Any]) -> None:
    succeeded = outcome.get("status") == "SUCCEEDED"
    metrics.add_metric(name=RUN_SUCCEEDED, unit=MetricUnit.Count, value=1 if succeeded else 0)
    metrics.add_metric(name=RUN_FAILED, unit=MetricUnit.Count, value=0 if succeeded else 1)
    if outcome.get("duration_ms") is not None:
        metrics.add_metric(name=RUN_DURATION_MS, unit=MetricUnit.Milliseconds, value=outcome["duration_ms"])
    if outcome.get("rejected") is not None:
        metrics.add_metric(name=ROWS_REJECTED, unit=MetricUnit.Count, value=outcome["rejected"])


def correlate(metrics: EphemeralMetrics, **ids: Any) -> None:
    """Run, chunk and correlation ids go with the metrics as metadata: searchable, never dimensions."""
    for key, value in ids.items():
        if value is not None:
            metrics.add_metadata(key=key, value=value)


# --- reading EMF back (local runs) ----------------------------------------------------------------------------

def emf_records(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The EMF objects among log lines (a JSON object with an ``_aws.CloudWatchMetrics`` block)."""
    found = []
    for line in lines:
        line = line.strip()
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "CloudWatchMetrics" in record.get("_aws", {}):
            found.append(record)
    return found


def summarise(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per metric: how many values, their sum, minimum and maximum."""
    summary: dict[str, dict[str, float]] = {}
    for record in records:
        for block in record["_aws"]["CloudWatchMetrics"]:
            for metric in block["Metrics"]:
                values = record.get(metric["Name"])
                for value in values if isinstance(values, list) else [values]:
                    if value is None:
                        continue
                    s = summary.setdefault(metric["Name"], {"count": 0, "sum": 0.0, "min": value, "max": value})
                    s["count"] += 1
                    s["sum"] += value
                    s["min"], s["max"] = min(s["min"], value), max(s["max"], value)
    return summary


def dimensions(records: Iterable[dict[str, Any]]) -> set[str]:
    """Every dimension name any EMF record declares."""
    return {name for record in records for block in record["_aws"]["CloudWatchMetrics"]
            for group in block["Dimensions"] for name in group}


# --- tracing -------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def subsegment(name: str, **annotations: str | int) -> Iterator[None]:
    """An X-Ray subsegment around a piece of work (a SQL statement). A no-op where tracing is off
    (outside Lambda, or POWERTOOLS_TRACE_DISABLED): the X-Ray SDK is then disabled as a whole."""
    recorder = _recorder()
    if recorder is None:
        yield
        return
    with recorder.in_subsegment(name) as sub:
        if sub is not None:
            for key, value in annotations.items():
                sub.put_annotation(key, value)
        yield


def tracing_enabled() -> bool:
    """Tracing runs where Powertools' Tracer runs it: in Lambda, unless POWERTOOLS_TRACE_DISABLED is set
    (and never under `sam local`)."""
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in ("1", "true", "yes", "on")
    return bool(os.environ.get("LAMBDA_TASK_ROOT")) and not os.environ.get("AWS_SAM_LOCAL") and not disabled


def _recorder() -> Any:
    if not tracing_enabled():
        return None
    try:
        import aws_xray_sdk
        from aws_xray_sdk.core import xray_recorder
    except ImportError:  # pragma: no cover - the tracer extra is installed everywhere the code runs
        return None
    return xray_recorder if aws_xray_sdk.global_sdk_config.sdk_enabled() else None
