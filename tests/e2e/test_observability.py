"""Operating signals of a real local run: the EMF metrics the handlers emit, one correlation id from the
execution's input to the worker's logs, metrics and idempotency record, and the plan preview."""

from __future__ import annotations

import json
from datetime import date

import boto3
import pytest

from chunking import ledger, observability, seed
from chunking.emulator import IDEMPOTENCY_TABLE_NAME, LocalCloud, LocalOptions

pytestmark = pytest.mark.e2e

RUN_METRICS = {"ChunksPlanned", "RunSucceeded", "RunFailed", "RunDurationMs", "RowsRejected", "RowsStaged"}
CHUNK_METRICS = {"ChunkDurationMs", "VisitsProcessed", "ConflictsInserted", "ConflictsUpdated", "ConflictsResolved",
                 "ConflictsReopened", "ChunkAttempts", "ChunkFailed"}


def test_metrics_of_a_real_run_are_captured_with_low_cardinality_dimensions(conn, etl):
    seed.seed_visits(conn, visits=2_000, start=date(2026, 10, 1), days=5, seed=61)
    result = etl("run", "--local", "--start", "2026-10-01", "--end", "2026-10-05", "--chunk-days", "1", "--json")
    assert result.code == 0
    summary, metrics = result.json, result.json["metrics"]
    # every per-chunk and per-run metric is there, with values that agree with the ledger
    assert set(metrics) >= CHUNK_METRICS | RUN_METRICS
    assert metrics["ChunkDurationMs"]["count"] == summary["chunks"] == 5
    assert metrics["ConflictsInserted"]["sum"] == summary["inserted"] > 0
    assert metrics["VisitsProcessed"]["sum"] == summary["visits"]
    assert metrics["ChunksPlanned"]["sum"] == 5 and metrics["RunSucceeded"]["sum"] == 1
    assert metrics["RunFailed"]["sum"] == metrics["ChunkFailed"]["sum"] == 0
    assert metrics["RowsRejected"]["sum"] == summary["rejected"]


def test_emf_dimensions_never_include_a_run_or_chunk_id(conn, database_url, tmp_path):
    seed.seed_visits(conn, visits=800, start=date(2026, 10, 1), days=2, seed=62)
    with LocalCloud(database_url, options=LocalOptions(max_concurrency=2), state_dir=tmp_path) as cloud:
        cloud.start_workers()
        cloud.wait(cloud.start_execution("emf", {"start_date": "2026-10-01", "end_date": "2026-10-02",
                                                 "chunk_days": 1}))
        records = cloud.metric_records
    assert records and observability.dimensions(records) == {"environment", "function", "service"}
    for record in records:
        assert record["environment"] == "local" and record["service"] == "conflict-map"
        assert "run_id" in record and "correlation_id" in record  # as metadata, searchable
    assert {r["function"] for r in records} == {"StageVisits", "PlanChunks", "ChunkWorker", "ReconcileRun"}


def test_a_failed_chunk_is_counted(conn, etl, monkeypatch):
    seed.seed_visits(conn, visits=600, start=date(2026, 10, 1), days=2, seed=63)
    for name, value in {"ETL_FAULT_CHUNKS": "2026-10-02", "ETL_MAX_RECEIVE_COUNT": "2", "ETL_RETRY_BASE_MS": "50",
                        "ETL_RETRY_MAX_MS": "50"}.items():
        monkeypatch.setenv(name, value)
    failed = etl("run", "--local", "--start", "2026-10-01", "--end", "2026-10-02", "--chunk-days", "1", "--json")
    metrics = failed.json["metrics"]
    assert failed.code == 1
    assert metrics["ChunkFailed"]["sum"] == 1 and metrics["ChunkAttempts"]["max"] == 2
    assert metrics["RunFailed"]["sum"] == 1 and metrics["RunSucceeded"]["sum"] == 0


def test_one_correlation_id_from_the_execution_input_to_the_worker(conn, database_url, tmp_path):
    seed.seed_visits(conn, visits=800, start=date(2026, 10, 1), days=2, seed=64)
    log = tmp_path / "run.jsonl"
    name = "nightly-2026-10-02-correlated"
    with LocalCloud(database_url, options=LocalOptions(max_concurrency=2), state_dir=tmp_path,
                    log_path=log) as cloud:
        cloud.start_workers()
        arn = cloud.start_execution(name, {"start_date": "2026-10-01", "end_date": "2026-10-02", "chunk_days": 1})
        assert cloud.wait(arn)["status"] == "SUCCEEDED"
        # the chunk messages the state machine sent carry it
        sent = [json.loads(e["taskScheduledEventDetails"]["parameters"]) for e in cloud.history(arn)
                if e["type"] == "TaskScheduled" and e["taskScheduledEventDetails"]["resourceType"] == "sqs"]
        records = cloud.metric_records
        stored = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=IDEMPOTENCY_TABLE_NAME)["Items"]
    run = ledger.list_runs(conn)[0]
    conn.rollback()
    assert len(sent) == 2 and {m["MessageBody"]["correlation_id"] for m in sent} == {name}
    # every log line of every handler carries it, the worker's also the run and its chunk
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    logs = [line for line in lines if "level" in line]
    assert logs and {line.get("correlation_id") for line in logs} == {name}
    worker = [line for line in logs if line.get("name") == "chunking.worker"]
    assert {(line["run_id"], line["chunk_id"]) for line in worker} == {(run["run_id"], 1), (run["run_id"], 2)}
    # so do the worker's metrics (as metadata) and its idempotency records
    assert {r["correlation_id"] for r in records if r["function"] == "ChunkWorker"} == {name}
    assert len(stored) == 2 and all(json.loads(item["data"]["S"])["correlation_id"] == name for item in stored)
    # and nothing secret or whole-event: no database URL, no task token in any line
    text = log.read_text()
    assert database_url not in text and "task_token" not in text and "postgresql://" not in text


def test_plan_preview_of_a_year_names_the_budgets(conn, etl):
    seed.seed_visits(conn, visits=36_500, start=date(2025, 10, 1), days=365, seed=65)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM analytics.visits WHERE status <> 'CANCELLED'")
        live = cur.fetchone()[0]
    conn.rollback()
    result = etl("plan", "--start", "2025-10-01", "--end", "2026-09-30", "--chunk-days", "1")
    assert result.code == 0
    assert f"{live:,} visits" in result.out.splitlines()[0] and "365 chunks" in result.out.splitlines()[0]
    assert "history events  ~3,850 of 25,000 (15.4%)" in result.out
    assert "Map input" in result.out and "of 262,144" in result.out
    assert "chunks          365 of at most 2,480" in result.out
    assert "Step Functions  740 state transitions" in result.out and "total" in result.out
    preview = json.loads(etl("plan", "--start", "2025-10-01", "--end", "2026-09-30", "--json").out)
    assert preview["budget"]["fits"] and preview["budget"]["history_events"] < 25_000
    assert preview["sizing"]["mode"] == "adaptive" and preview["cost"]["total"] > 0
    assert sum(c["estimated_rows"] for c in preview["chunks"]) == live


def test_plan_preview_shows_what_earlier_runs_covered(conn, etl):
    seed.seed_visits(conn, visits=600, start=date(2026, 10, 1), days=4, seed=66)
    assert etl("run", "--local", "--start", "2026-10-01", "--end", "2026-10-02", "--chunk-days", "1").code == 0
    preview = json.loads(etl("plan", "--start", "2026-10-01", "--end", "2026-10-04", "--chunk-days", "1",
                             "--json").out)
    covered = {c["chunk_start"]: c["days_covered"] for c in preview["chunks"]}
    assert covered == {"2026-10-01": 1, "2026-10-02": 1, "2026-10-03": 0, "2026-10-04": 0}
    assert preview["chunks"][0]["covered_by_runs"] == [1]
