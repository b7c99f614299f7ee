"""The chunk queues as the CLI sees them: dead letters read (and some deleted) the same way in AWS and in
the local emulator."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

DLQ_HOLD_S = 120  # how long a read keeps a message invisible, so each is seen once

logger = logging.getLogger(__name__)


def letter_of(message: dict[str, Any]) -> dict[str, Any]:
    """A dead-lettered message: its raw body, the body parsed (when it is a JSON object), its attributes
    flattened (error_type, error, attempts, ...) and how often it was received."""
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = None
    attributes = {k: v.get("StringValue") for k, v in message.get("MessageAttributes", {}).items()}
    return {"raw_body": message["Body"], "body": body if isinstance(body, dict) else None,
            "attributes": attributes, "receive_count": message.get("Attributes", {}).get("ApproximateReceiveCount")}


def read_dead_letters(sqs: Any, dlq_url: str, *, delete: Callable[[dict[str, Any]], bool] | None = None,
                      wait_s: int = 0, max_letters: int = 10_000) -> list[dict[str, Any]]:
    """Every message in the dead-letter queue; those ``delete`` accepts are deleted, the others made visible
    again at once. Messages are held invisible while the queue is read, so each is seen once; with long
    polling (``wait_s``) an empty receive means an empty queue rather than an unlucky sample of SQS's servers."""
    seen: list[dict[str, Any]] = []
    kept: list[str] = []
    try:
        while len(seen) < max_letters:
            batch = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=DLQ_HOLD_S,
                                        WaitTimeSeconds=wait_s, MessageAttributeNames=["All"],
                                        AttributeNames=["All"]).get("Messages", [])
            if not batch:
                break
            for message in batch:
                letter = letter_of(dict(message))
                seen.append(letter)
                if delete is not None and delete(letter):
                    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
                else:
                    kept.append(message["ReceiptHandle"])
    finally:
        release(sqs, dlq_url, kept)
    return seen


def release(sqs: Any, queue_url: str, handles: list[str]) -> None:
    """Make held messages visible again at once (best effort: they reappear after the hold anyway)."""
    for start in range(0, len(handles), 10):
        entries = [{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                   for i, h in enumerate(handles[start:start + 10])]
        try:
            sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
        except ClientError as exc:
            logger.warning("could not release held dead-letter messages; they reappear after the hold",
                           extra={"error": str(exc)})
            return
