"""Abandoning a run driven by an execution in AWS: refused while Step Functions says the execution runs,
allowed once it has ended and the heartbeat is stale (moto stands in for Step Functions)."""

from __future__ import annotations

import json
from datetime import date

import boto3
import pytest

from chunking import ledger

pytestmark = pytest.mark.e2e

DEFINITION = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}})


@pytest.fixture
def deployed(aws, monkeypatch):
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(name="conflict-map", definition=DEFINITION,
                                   roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]
    dlq = boto3.client("sqs").create_queue(QueueName="dlq")["QueueUrl"]
    monkeypatch.setenv("STATE_MACHINE_ARN", arn)
    monkeypatch.setenv("CHUNK_DLQ_URL", dlq)
    return sfn, arn


def _stale_run(conn, name):
    run = ledger.begin_run(conn, execution_name=name, trigger="schedule", executor=name,
                           window_start=date(2026, 10, 1), window_end=date(2026, 10, 7), chunk_days=7,
                           max_chunk_rows=None, max_concurrency=2)
    with conn.cursor() as cur:
        cur.execute("UPDATE etl.runs SET heartbeat_at = now() - interval '1 hour' WHERE run_id = %s", (run["run_id"],))
    conn.commit()
    return run


def test_run_of_a_live_execution_cannot_be_abandoned_and_of_a_dead_one_can(conn, etl, deployed):
    sfn, arn = deployed
    execution = sfn.start_execution(stateMachineArn=arn, name="scheduled-2026-10-08")["executionArn"]
    run = _stale_run(conn, "scheduled-2026-10-08")
    # while its execution runs, even a stale heartbeat does not make it abandonable
    alive = etl("abandon", "--run-id", str(run["run_id"]))
    assert alive.code == 2 and "its execution scheduled-2026-10-08 is RUNNING" in alive.err
    status = etl("status", "--run-id", str(run["run_id"]))
    assert "liveness: its execution scheduled-2026-10-08 is RUNNING" in status.out
    # once the execution has ended, it is
    sfn.stop_execution(executionArn=execution, error="Killed", cause="test")
    dead = etl("abandon", "--run-id", str(run["run_id"]))
    assert dead.code == 0 and "its execution scheduled-2026-10-08 is ABORTED" in dead.out
    assert ledger.get_run(conn, run["run_id"])["status"] == "ABANDONED"
    conn.rollback()


def test_run_whose_liveness_cannot_be_checked_needs_force(conn, etl, monkeypatch):
    monkeypatch.delenv("STATE_MACHINE_ARN", raising=False)
    monkeypatch.delenv("ETL_STACK_NAME", raising=False)
    run = _stale_run(conn, "scheduled-2026-10-09")
    refused = etl("abandon", "--run-id", str(run["run_id"]))
    assert refused.code == 2 and "cannot be proven dead" in refused.err and "--force" in refused.err
    forced = etl("abandon", "--run-id", str(run["run_id"]), "--force")
    assert forced.code == 0
