"""`sam local invoke` for every function, without Docker.

For each function: read its Handler from template.yaml, import it from the `sam build` output, and call it
with its events/ file and the environment `sam local invoke --env-vars events/env.json` would give it,
against moto and a real PostgreSQL. The events form one realistic run: ValidateConfig's reply is the
`run` the other step events carry, and the worker's message is PlanChunks' first chunk. Before each step,
the ledger is brought to the state that step finds in a real run (run begun, visits staged, chunks
planned), so the event refers to real rows."""

from __future__ import annotations

import decimal
import hashlib
import json
import os
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pytest

from chunking import ledger, settings, tasks
from chunking.planner import fixed_sizing
from tests.deploy import sam
from tests.factories import chunk_rows, conflicts, insert, rejected, visit

RUN: dict[str, Any] = sam.load_event("stage_visits.json")["run"]
SETTINGS_VARIABLES = {v for k, v in vars(settings).items() if k.isupper() and isinstance(v, str)}

Invoke = Callable[..., Any]


def _lambda_json(reply: Any) -> Any:
    """The reply as Lambda returns it: JSON (the Python runtime's encoder knows Decimal and nothing more)."""
    def default(value: Any) -> Any:
        if isinstance(value, decimal.Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    return json.loads(json.dumps(reply, default=default))


@pytest.fixture
def invoke(built: Path, template: dict[str, Any], database_url: str, monkeypatch: pytest.MonkeyPatch,
           aws: None) -> Invoke:
    def run(logical_id: str, event: Any, **overrides: str) -> Any:
        env = sam.local_invoke_env(template, logical_id)
        env["DATABASE_URL"] = database_url  # the test database stands in for env.json's host.docker.internal
        env.update(overrides)
        for name in list(os.environ):
            if name in SETTINGS_VARIABLES or name.startswith(("ETL_", "POWERTOOLS_")):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        code = built / logical_id
        with sam.code_from(code):
            handler = sam.load_handler(sam.functions(template)[logical_id]["Handler"])
            assert Path(sys.modules[handler.__module__].__file__ or "").is_relative_to(code)
            assert code / "sql" == sys.modules["chunking.db"].SQL_DIR  # the artifact's own SQL files
            try:
                return _lambda_json(handler(event, sam.LambdaContext(logical_id, sam.timeout_of(template, logical_id))))
            finally:
                sys.modules["chunking.runtime"].reset()  # close this cold container's connection
    return run


def given_visits(conn) -> None:
    """Two agencies' overlapping visits of one caregiver, a lone visit, and one that ends before it starts."""
    insert(conn,
           visit(1, "2026-10-27", "09:00", "11:00", caregiver=7, provider=1),
           visit(2, "2026-10-27", "10:30", "12:00", caregiver=7, provider=2),
           visit(3, "2026-10-29", "08:00", "09:00", caregiver=8, provider=1),
           visit(4, "2026-10-30", "10:00", "09:00", caregiver=9, provider=3))


def given_run(conn, *, staged: bool = False, planned: bool = False, applied: bool = False) -> dict[str, Any]:
    """The ledger as the step after ValidateConfig (and after StageVisits, PlanChunks, the chunks) finds it."""
    given_visits(conn)
    run = ledger.begin_run(conn, execution_name=RUN["correlation_id"], trigger="schedule",
                           executor=RUN["correlation_id"], window_start=date.fromisoformat(RUN["window_start"]),
                           window_end=date.fromisoformat(RUN["window_end"]), chunk_days=RUN["chunk_days"],
                           max_chunk_rows=RUN["max_chunk_rows"], max_concurrency=RUN["max_concurrency"])
    assert run["run_id"] == RUN["run_id"], "the events name run 1: the database must be empty"
    if staged:
        tasks.stage_visits(conn, run["run_id"], date.fromisoformat(RUN["stage_start"]),
                           date.fromisoformat(RUN["stage_end"]))
    if planned:
        chunks = tasks.plan_run(conn, run, fixed_sizing(RUN["chunk_days"], RUN["max_chunk_rows"]))
        if applied:
            for chunk in chunks:
                tasks.apply_chunk(conn, run_id=run["run_id"], chunk_id=chunk.chunk_id, chunk_start=chunk.start,
                                  chunk_end=chunk.end, worker="test", remaining_ms=lambda: 60_000,
                                  margin_ms=1_000, final_attempt=True)
    return run


def test_validate_config_begins_the_scheduled_run_the_step_events_carry(conn, invoke: Invoke) -> None:
    reply = invoke("ValidateConfigFunction", sam.load_event("validate_config.json"))

    assert reply == RUN  # the same run stage_visits.json, plan_chunks.json and reconcile_run.json carry
    run = ledger.get_run(conn, reply["run_id"])
    conn.rollback()
    assert (run["status"], run["trigger"], run["execution_name"]) == ("RUNNING", "schedule", RUN["correlation_id"])
    assert (str(run["window_start"]), str(run["window_end"])) == ("2026-10-26", "2026-11-01")


def test_stage_visits_stages_the_window_and_records_the_rejected_visit(conn, invoke: Invoke) -> None:
    given_run(conn)

    reply = invoke("StageVisitsFunction", sam.load_event("stage_visits.json"))

    assert reply["staged_rows"] == 3 and reply["rejected_rows"] == 1
    assert rejected(conn) == {4: "NON_POSITIVE_DURATION"}
    assert ledger.get_run(conn, RUN["run_id"])["staged_at"] is not None
    conn.rollback()


def test_plan_chunks_plans_the_chunk_the_worker_event_carries(conn, invoke: Invoke) -> None:
    given_run(conn, staged=True)

    reply = invoke("PlanChunksFunction", sam.load_event("plan_chunks.json"))

    message = json.loads(sam.load_event("chunk_worker.json")["Records"][0]["body"])
    assert reply["count"] == len(reply["chunks"]) == 1
    assert reply["chunks"][0] == {k: message[k] for k in ("chunk_id", "chunk_start", "chunk_end")}
    assert (message["run_id"], message["correlation_id"]) == (RUN["run_id"], RUN["correlation_id"])
    assert [(c["chunk_id"], c["status"]) for c in chunk_rows(conn, RUN["run_id"])] == [(1, "PENDING")]


def _queue(sqs: Any, url: str, **attributes: str) -> str:
    created = sqs.create_queue(QueueName=url.rsplit("/", 1)[-1], Attributes=attributes)["QueueUrl"]
    assert created == url, "env.json's queue URL is not what SQS gives that queue name"
    return str(created)


def test_chunk_worker_applies_the_chunk_from_a_real_sqs_delivery(conn, invoke: Invoke) -> None:
    given_run(conn, staged=True, planned=True)
    env = sam.env_json()["ChunkWorkerFunction"]
    sqs, dynamodb = boto3.client("sqs"), boto3.client("dynamodb")
    dlq_url = _queue(sqs, env["CHUNK_DLQ_URL"])
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = _queue(sqs, env["CHUNK_QUEUE_URL"], VisibilityTimeout="1800", RedrivePolicy=json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}))
    dynamodb.create_table(TableName=env["IDEMPOTENCY_TABLE"], BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    event = sam.load_event("chunk_worker.json")

    def deliver(**overrides: str) -> dict[str, Any]:
        """The event source mapping: receive the event's message from the queue, hand over the batch in the
        event file's shape, delete what did not fail."""
        for record in event["Records"]:
            sqs.send_message(QueueUrl=queue_url, MessageBody=record["body"])
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                       AttributeNames=["All"])["Messages"]
        records = []
        for template_record, message in zip(event["Records"], messages, strict=True):
            assert hashlib.md5(message["Body"].encode()).hexdigest() == template_record["md5OfBody"]
            records.append({**template_record, "messageId": message["MessageId"],
                            "receiptHandle": message["ReceiptHandle"],
                            "attributes": {**template_record["attributes"], **message["Attributes"]}})
        reply = invoke("ChunkWorkerFunction", {"Records": records}, **overrides)
        failed = {f["itemIdentifier"] for f in reply["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return dict(reply)

    reply = deliver()

    assert reply == {"batchItemFailures": []}
    [chunk] = chunk_rows(conn, RUN["run_id"])
    assert (chunk["status"], chunk["attempts"], chunk["inserted"]) == ("SUCCEEDED", 1, 1)
    assert list(conflicts(conn)) == [(1, 2)]
    items = dynamodb.scan(TableName=env["IDEMPOTENCY_TABLE"])["Items"]
    assert [item["status"]["S"] for item in items] == ["COMPLETED"]
    for url in (queue_url, dlq_url):
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")

    # A duplicate delivery is answered from the DynamoDB idempotency record, without the database: it
    # succeeds even with the database out of reach.
    assert deliver(DATABASE_URL="postgresql://postgres@127.0.0.1:1/unreachable") == {"batchItemFailures": []}
    [chunk] = chunk_rows(conn, RUN["run_id"])
    assert (chunk["status"], chunk["attempts"]) == ("SUCCEEDED", 1)
    assert sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"][
        "ApproximateNumberOfMessages"] == "0"


def test_reconcile_run_marks_the_run_succeeded_with_its_counts(conn, invoke: Invoke) -> None:
    given_run(conn, staged=True, planned=True, applied=True)

    reply = invoke("ReconcileRunFunction", sam.load_event("reconcile_run.json"))

    assert (reply["run_id"], reply["status"], reply["error"], reply["chunks"]) == (RUN["run_id"], "SUCCEEDED", None, 1)
    assert reply["counts"]["inserted"] == 1 and reply["rejected"] == 1
    assert ledger.get_run(conn, RUN["run_id"])["status"] == "SUCCEEDED"
    conn.rollback()
