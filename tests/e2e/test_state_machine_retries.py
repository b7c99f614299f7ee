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
