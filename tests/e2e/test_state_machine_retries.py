"""The definition's Retry and Catch, exercised through the real ASL: a transient Lambda error is retried
with backoff; a permanent one is not, and the run is marked FAILED naming the step that failed."""

from __future__ import annotations

from datetime import date

import pytest

from chunking import ledger, seed
from chunking.emulator import LocalCloud, LocalOptions
from chunking.errors import PermanentError, TransientError

pytestmark = pytest.mark.e2e


def _flaky(handler, error, times):
    calls = {"n": 0}

    def wrapped(event, context):
        calls["n"] += 1
        if calls["n"] <= times:
            raise error
        return handler(event, context)

    return wrapped, calls


def _entered(cloud, arn):
    return [e["stateEnteredEventDetails"]["name"] for e in cloud.history(arn) if "stateEnteredEventDetails" in e]


def test_transient_error_in_a_step_is_retried_by_the_state_machine(conn, database_url, tmp_path):
    seed.seed_visits(conn, visits=300, start=date(2026, 10, 1), days=2, seed=41)
    with LocalCloud(database_url, options=LocalOptions(max_concurrency=1), state_dir=tmp_path) as cloud:
        cloud.start_workers()
        cloud._handlers["StageVisitsFunction"], calls = _flaky(
            cloud._handlers["StageVisitsFunction"], TransientError("connection reset by the proxy"), times=1)
        arn = cloud.start_execution("retried", {"start_date": "2026-10-01", "end_date": "2026-10-02"})
        described = cloud.wait(arn)
        failures = [e for e in cloud.history(arn) if e["type"] == "LambdaFunctionFailed"
                    or e["type"] == "TaskFailed"]
    assert described["status"] == "SUCCEEDED"
    assert calls["n"] == 2 and len(failures) == 1


def test_permanent_error_in_a_step_fails_the_run_naming_the_step(conn, database_url, tmp_path):
    seed.seed_visits(conn, visits=300, start=date(2026, 10, 1), days=2, seed=42)
    with LocalCloud(database_url, options=LocalOptions(max_concurrency=1), state_dir=tmp_path) as cloud:
        cloud.start_workers()
        cloud._handlers["PlanChunksFunction"], calls = _flaky(
            cloud._handlers["PlanChunksFunction"], PermanentError("relation etl.chunks does not exist"), times=9)
        arn = cloud.start_execution("plan-breaks", {"start_date": "2026-10-01", "end_date": "2026-10-02"})
        described = cloud.wait(arn)
        entered = _entered(cloud, arn)
    # no retry for a permanent error; the run is marked FAILED and the execution fails naming the step
    assert calls["n"] == 1
    assert described["status"] == "FAILED" and described["error"] == "PlanChunksFailed"
    assert described["cause"] == "PlanChunks failed: PermanentError: relation etl.chunks does not exist"
    assert entered[-3:] == ["PlanChunksFailed", "AbortRun", "RunAborted"]
    run = ledger.list_runs(conn)[0]
    conn.rollback()
    assert (run["status"], run["error"]) == ("FAILED", described["cause"])
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM etl.staged_visits")
        assert cur.fetchone()[0] == 0  # staging cleared
    conn.rollback()


def test_every_step_retries_transient_errors_and_lambda_timeouts_with_backoff():
    import json

    from chunking.emulator import ASL_PATH

    states = json.loads(ASL_PATH.read_text())["States"]
    for name in ("ValidateConfig", "StageVisits", "PlanChunks", "ReconcileRun", "AbortRun"):
        [retry] = states[name]["Retry"]
        assert {"TransientError", "Sandbox.Timedout", "Lambda.Unknown"} <= set(retry["ErrorEquals"]), name
        assert retry["BackoffRate"] > 1 and retry["JitterStrategy"] == "FULL" and retry["MaxAttempts"] >= 6, name
    chunk = states["FanOut"]["ItemProcessor"]["States"]["ProcessChunk"]
    assert chunk["HeartbeatSecondsPath"] == "$.heartbeat_seconds"
    assert any({"States.HeartbeatTimeout", "States.Timeout"} <= set(r["ErrorEquals"]) for r in chunk["Retry"])


def test_a_chunk_whose_worker_died_is_found_by_its_heartbeat_and_sent_again(conn, database_url, tmp_path,
                                                                           monkeypatch):
    import boto3

    # given heartbeats every second and backoff of at most a second: a Map item hears from its chunk every few s
    monkeypatch.setenv("ETL_HEARTBEAT_INTERVAL_S", "1")
    monkeypatch.setenv("ETL_RETRY_MAX_MS", "1000")
    seed.seed_visits(conn, visits=300, start=date(2026, 10, 1), days=2, seed=43)
    with LocalCloud(database_url, options=LocalOptions(max_concurrency=1, retry_max_ms=1000),
                    state_dir=tmp_path, env={"ETL_HEARTBEAT_INTERVAL_S": "1", "ETL_RETRY_MAX_MS": "1000"}) as cloud:
        arn = cloud.start_execution("heartbeat", {"start_date": "2026-10-01", "end_date": "2026-10-02",
                                                  "chunk_days": 2, "max_chunk_rows": 1_000_000})
        # when the first delivery is taken by a worker that dies at once (received, never answered or deleted)
        sqs = boto3.client("sqs", region_name="us-east-1")
        taken: list[dict] = []
        for _ in range(200):
            taken = sqs.receive_message(QueueUrl=cloud.queue_url, WaitTimeSeconds=0).get("Messages", [])
            if taken:
                break
            import time

            time.sleep(0.05)
        assert taken, "the chunk was never sent"
        cloud.start_workers()
        described = cloud.wait(arn)
        timeouts = [e for e in cloud.history(arn) if e["type"] == "TaskTimedOut"]
    # then the Map item times out on its heartbeat, well before the chunk's whole timeout, sends the chunk again,
    # and the run succeeds
    assert described["status"] == "SUCCEEDED"
    assert (described["stopDate"] - described["startDate"]).total_seconds() < 60  # the chunk timeout is ~31 min
    assert len(timeouts) == 1 and "Timeout" in json_dumps(timeouts[0])  # moto names it States.Timeout
    run = ledger.list_runs(conn)[0]
    assert run["status"] == "SUCCEEDED"


def json_dumps(value):
    import json

    return json.dumps(value, default=str)
