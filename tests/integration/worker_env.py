"""A chunk worker wired to real SQS and DynamoDB (moto) and the real test database, with a staged run."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import boto3
import psycopg2
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chunking import ledger, tasks
from chunking.db import ConnectionCache
from chunking.emulator import LambdaContext
from chunking.planner import fixed_sizing
from chunking.settings import Settings
from chunking.worker import ChunkWorker

REGION = "us-east-1"


@dataclasses.dataclass
class WorkerEnv:
    database_url: str
    settings: Settings
    run: dict[str, Any]
    chunks: list[Any]

    def worker(self, name: str = "w1", *, idempotency: bool = True) -> ChunkWorker:
        cache = ConnectionCache()  # one per simulated container; reconnects when its connection broke
        worker = ChunkWorker(self.settings, lambda: cache.get(self.database_url), worker_name=name,
                             idempotency=idempotency)
        worker.register_lambda_context(LambdaContext("ChunkWorkerFunction", timeout_s=60))  # as the handler does
        return worker

    def body(self, chunk_index: int = 0, **override: Any) -> str:
        chunk = self.chunks[chunk_index]
        return json.dumps({"run_id": self.run["run_id"], "chunk_id": chunk.chunk_id,
                           "chunk_start": chunk.start.isoformat(), "chunk_end": chunk.end.isoformat(),
                           "correlation_id": "test-correlation", **override})

    def record(self, body: str, receive_count: int = 1, message_id: str | None = None) -> SQSRecord:
        """Send the body to the chunk queue and receive it, as the event source mapping would."""
        sqs = boto3.client("sqs", region_name=REGION)
        sqs.send_message(QueueUrl=self.settings.chunk_queue_url, MessageBody=body)
        message = sqs.receive_message(QueueUrl=self.settings.chunk_queue_url, AttributeNames=["All"])["Messages"][0]
        return SQSRecord({"messageId": message_id or message["MessageId"], "receiptHandle": message["ReceiptHandle"],
                          "body": body, "attributes": {"ApproximateReceiveCount": str(receive_count)},
                          "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": REGION})

    def dead_letters(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        found = sqs.receive_message(QueueUrl=self.settings.chunk_dlq_url, MaxNumberOfMessages=10,
                                    MessageAttributeNames=["All"]).get("Messages", [])
        return [{"body": _json_or_text(m["Body"]),
                 "attributes": {k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items()}}
                for m in found]

    def forget_idempotency_records(self) -> int:
        table = boto3.resource("dynamodb", region_name=REGION).Table(self.settings.idempotency_table)
        items = table.scan()["Items"]
        for item in items:
            table.delete_item(Key={"id": item["id"]})
        return len(items)


def _json_or_text(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body


def make_env(conn: Any, database_url: str, *, start: date, end: date, chunk_days: int = 1,
             **settings: Any) -> WorkerEnv:
    sqs = boto3.client("sqs", region_name=REGION)
    suffix = uuid.uuid4().hex[:6]
    dlq = sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
    queue = sqs.create_queue(QueueName=f"chunks-{suffix}", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    table = f"idempotency-{suffix}"
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    cfg = Settings(database_url=database_url, chunk_queue_url=queue, chunk_dlq_url=dlq, idempotency_table=table,
                   retry_base_ms=0, retry_max_ms=0, timeout_margin_ms=1_000, **settings)
    run = ledger.begin_run(conn, execution_name=f"worker-test-{suffix}", trigger="test", executor="test",
                           window_start=start, window_end=end, chunk_days=chunk_days, max_chunk_rows=10**9,
                           max_concurrency=2)
    tasks.stage_visits(conn, run["run_id"], start, end)
    chunks = tasks.plan_run(conn, run, fixed_sizing(chunk_days, 10**9))
    return WorkerEnv(database_url, cfg, run, chunks)


@contextlib.contextmanager
def holding(database_url: str, statement: str, params: tuple[Any, ...] = ()) -> Iterator[None]:
    """Hold the row locks ``statement`` takes (``... FOR UPDATE``) until the block ends, whatever happens."""
    blocker = psycopg2.connect(database_url)
    try:
        with blocker.cursor() as cur:
            cur.execute(statement, params)
        yield
    finally:
        blocker.rollback()
        blocker.close()


def in_thread(target: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``target(*args)`` in a thread; the returned dict gets ``result`` or ``error``."""
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            outcome["result"] = target(*args)
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=body)
    thread.start()
    return thread, outcome
