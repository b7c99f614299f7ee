"""Run by ``bench/run_bench.py`` in a fresh interpreter: apply one planned chunk through the real ChunkWorker
handler (Powertools batch and idempotency, AWS emulated in-process by moto) and report the process's memory.

    python -m bench.worker_probe DATABASE_URL RUN_ID CHUNK_ID CHUNK_START CHUNK_END TIMEOUT_S

Prints one JSON object: resident memory before the handler is imported, after, and the peak (VmHWM)
once the chunk is applied, with the handler's reply. The peak includes moto and boto3, which a real Lambda
container does not load for the worker's own work (moto is the emulated AWS): it overstates the worker."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from typing import Any

REGION = "us-east-1"


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    return 0


def rss_kb() -> int:
    """The current resident set size of this process (VmRSS), in KiB."""
    return _status_kb("VmRSS")


def peak_rss_kb() -> int:
    """The peak resident set size of this process since it started (VmHWM), in KiB. Not ``ru_maxrss``: Linux
    carries that over from the parent across fork and exec, so it would report the benchmark's own size."""
    return _status_kb("VmHWM")


def record(run_id: int, chunk_id: int, chunk_start: str, chunk_end: str, queue_arn: str) -> dict[str, Any]:
    """An SQS record as the event source mapping hands it to the worker (no task token: no Map waits)."""
    body = json.dumps({"run_id": run_id, "chunk_id": chunk_id, "chunk_start": chunk_start, "chunk_end": chunk_end,
                       "correlation_id": f"bench-{uuid.uuid4().hex[:8]}"})
    return {"messageId": str(uuid.uuid4()), "receiptHandle": "bench", "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
            "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": queue_arn,
            "awsRegion": REGION}


def main(argv: list[str]) -> int:
    url, run_id, chunk_id, chunk_start, chunk_end, timeout_s = argv
    os.environ.update({
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_SESSION_TOKEN": "bench",
        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "POWERTOOLS_SERVICE_NAME": "conflict-map",
        "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING", "DATABASE_URL": url,
        "ETL_ENVIRONMENT": "bench", "ETL_WORKER_TIMEOUT_S": timeout_s,
    })
    os.environ.pop("ETL_FAULT_CHUNKS", None)
    before_import = rss_kb()
    import boto3
    from moto import mock_aws

    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        queue = sqs.create_queue(QueueName="bench-chunks")["QueueUrl"]
        dlq = sqs.create_queue(QueueName="bench-chunks-dlq")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName="bench-idempotency", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
        os.environ.update({"CHUNK_QUEUE_URL": queue, "CHUNK_DLQ_URL": dlq, "IDEMPOTENCY_TABLE": "bench-idempotency"})
        after_mocks = rss_kb()

        import handlers.chunk_worker as worker
        from chunking.emulator import LambdaContext

        after_import = rss_kb()
        began = time.monotonic()
        reply = worker.lambda_handler({"Records": [record(int(run_id), int(chunk_id), chunk_start, chunk_end,
                                                          queue_arn)]},
                                      LambdaContext("ChunkWorkerFunction", int(timeout_s)))
        seconds = time.monotonic() - began
    print(json.dumps({"rss_before_import_kb": before_import, "rss_with_moto_kb": after_mocks,
                      "rss_after_import_kb": after_import, "rss_after_chunk_kb": rss_kb(),
                      "peak_rss_kb": peak_rss_kb(), "seconds": round(seconds, 3), "reply": reply}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
