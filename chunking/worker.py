"""The chunk worker: one SQS record in, one chunk applied exactly once, the waiting Map item told.

Two layers make a chunk's effect exactly-once. Powertools idempotency (DynamoDB, keyed on run and range)
stops duplicate deliveries early; the ledger row committed in the chunk's own transaction
(:func:`chunking.tasks.apply_chunk`) is the final judge when the idempotency record is lost.

Failures: a transient error with deliveries left is re-raised (the record is reported as a batch item
failure and comes back after an exponential, jittered visibility timeout). A permanent error, or a
transient one on the last delivery, gives up at once: the message goes to the dead-letter queue with the
reason, the ledger marks the chunk FAILED, and the Map item is failed through its task token."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyInconsistentStateError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from botocore.exceptions import ClientError

from chunking import tasks
from chunking.db import Connection
from chunking.errors import EtlError, PermanentError, TransientError, as_pipeline_error, is_unexpected
from chunking.ledger import COUNT_FIELDS
from chunking.messages import ChunkMessage, task_token_of
from chunking.settings import Settings

logger = logging.getLogger(__name__)

# The orchestrator stopped waiting (the Map item timed out or the execution ended): the chunk's commit
# stands, and the ledger, not the callback, is the truth.
_GONE_TOKEN_ERRORS = {"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"}

IDEMPOTENCY_EXPIRY_S = 24 * 3600


class ChunkWorker:
    """Processes chunk-queue records. One per Lambda container (one per worker thread locally)."""

    def __init__(self, settings: Settings, connection: Callable[[], Connection], *, worker_name: str,
                 idempotency: bool = True, before_commit: Callable[[tasks.ChunkResult], None] | None = None) -> None:
        settings.require("chunk_queue_url", "chunk_dlq_url")
        if idempotency:
            settings.require("idempotency_table")
        self.settings = settings
        self._connection = connection
        self.worker_name = worker_name
        self.before_commit = before_commit  # a fault drill (chunking.drills) in a dev stack or locally; else None
        self._sfn: Any = None
        self._sqs: Any = None
        self.idempotency_config = IdempotencyConfig(
            event_key_jmespath="[run_id, chunk_start, chunk_end]",
            payload_validation_jmespath="chunk_id",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=IDEMPOTENCY_EXPIRY_S,
        )
        if idempotency:
            assert settings.idempotency_table
            store = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=_dynamodb_client())
            self._apply_once = idempotent_function(
                data_keyword_argument="chunk", persistence_store=store, config=self.idempotency_config,
            )(self._apply)
        else:
            self._apply_once = self._apply

    # AWS clients are created on first use, never at import (so moto and the emulator can stand in).
    @property
    def sfn(self) -> Any:
        if self._sfn is None:
            self._sfn = boto3.client("stepfunctions")
        return self._sfn

    @property
    def sqs(self) -> Any:
        if self._sqs is None:
            self._sqs = boto3.client("sqs")
        return self._sqs

    def register_lambda_context(self, context: Any) -> None:
        """Tie the idempotency in-progress expiry to this invocation's remaining time."""
        self.idempotency_config.register_lambda_context(context)

    # --- one record ----------------------------------------------------------------------------------------

    def process(self, record: SQSRecord, remaining_ms: Callable[[], int]) -> dict[str, Any]:
        """Handle one record; raising means "deliver it again" (a batch item failure)."""
        receive_count = int(record.attributes.approximate_receive_count or 1)
        final = receive_count >= self.settings.max_receive_count
        try:
            message = ChunkMessage.parse_body(record.body)
        except PermanentError as malformed:
            self._give_up(record, None, malformed, receive_count)
            return {"status": "DEAD_LETTERED", "error": str(malformed)}

        try:
            with self._heartbeats(message):
                output: dict[str, Any] = self._apply_once(chunk=message.key(), correlation_id=message.correlation_id,
                                          final_attempt=final, remaining_ms=remaining_ms)
        except Exception as exc:
            error = self._classify(exc)
            details = {"error": str(error), "error_type": type(error).__name__,
                       "error_code": getattr(error, "code", None)}
            if is_unexpected(exc):  # a bug, not a classified failure: keep its traceback
                logger.exception("chunk attempt raised an unexpected error", extra=details)
            if isinstance(error, TransientError) and not final:
                delay = self._back_off(record, receive_count)
                logger.warning("chunk attempt failed, will retry", extra={**details, "retry_in_s": delay})
                raise error from exc
            logger.error("chunk failed for good", extra=details)  # noqa: TRY400 - expected; unexpected ones logged above with traceback
            self._give_up(record, message, error, receive_count)
            return {"status": "DEAD_LETTERED", "error": str(error)}

        logger.info("chunk done", extra={k: output.get(k) for k in (
            "status", "visits", *COUNT_FIELDS, "duration_ms")})
        self._report_success(message, output)
        return output

    def _apply(self, chunk: dict[str, Any], correlation_id: str, final_attempt: bool,
               remaining_ms: Callable[[], int]) -> dict[str, Any]:
        """Task 02 for the chunk (wrapped by the idempotency layer: its output, with the correlation id of
        the run that applied it, is the idempotency record; a raised error leaves no record)."""
        chunk_start, chunk_end = date.fromisoformat(chunk["chunk_start"]), date.fromisoformat(chunk["chunk_end"])
        result = tasks.apply_chunk(
            self._connection(), run_id=int(chunk["run_id"]), chunk_id=int(chunk["chunk_id"]),
            chunk_start=chunk_start, chunk_end=chunk_end, worker=self.worker_name,
            remaining_ms=remaining_ms, margin_ms=self.settings.timeout_margin_ms, final_attempt=final_attempt,
            before_commit=self.before_commit)
        return {**result.as_output(), "correlation_id": correlation_id}

    @staticmethod
    def _classify(exc: Exception) -> EtlError:
        if isinstance(exc, IdempotencyAlreadyInProgressError | IdempotencyInconsistentStateError):
            return TransientError("another delivery of this chunk is in progress")
        if isinstance(exc, IdempotencyValidationError):
            return PermanentError("a different chunk was already processed under this run and range")
        if isinstance(exc, IdempotencyPersistenceLayerError):
            return TransientError(f"idempotency store unavailable: {exc}")
        return as_pipeline_error(exc)

    # --- outcomes ------------------------------------------------------------------------------------------

    def _back_off(self, record: SQSRecord, receive_count: int) -> int:
        """Exponential backoff with full jitter, through the message's visibility timeout."""
        ceiling = min(self.settings.retry_max_ms, self.settings.retry_base_ms * 2 ** (receive_count - 1))
        delay_s = max(0, round(random.uniform(ceiling / 2, ceiling) / 1000))
        try:
            self.sqs.change_message_visibility(QueueUrl=self.settings.chunk_queue_url,
                                               ReceiptHandle=record.receipt_handle, VisibilityTimeout=delay_s)
        except ClientError as exc:  # the queue's own visibility timeout applies instead
            logger.warning("could not set retry delay", extra={"error": str(exc)})
        return delay_s

    def _give_up(self, record: SQSRecord, message: ChunkMessage | None, error: EtlError, attempts: int) -> None:
        """Dead-letter the message with the reason, then fail the waiting Map item (if any)."""
        self.sqs.send_message(
            QueueUrl=self.settings.chunk_dlq_url, MessageBody=record.body,
            MessageAttributes={
                "error_type": {"DataType": "String", "StringValue": type(error).__name__},
                "error": {"DataType": "String", "StringValue": str(error)[:1000] or "-"},
                "attempts": {"DataType": "Number", "StringValue": str(attempts)},
                "source_message_id": {"DataType": "String", "StringValue": record.message_id or "-"},
            })
        token = message.task_token if message else task_token_of(record.body)
        if token:
            what = (f"chunk {message.chunk_id} ({message.chunk_start}..{message.chunk_end}) of run {message.run_id}"
                    if message else "a malformed chunk message")
            cause = f"{what} failed after {attempts} attempt{'s' if attempts != 1 else ''}: " \
                    f"{type(error).__name__}: {error}"
            self._callback("send_task_failure", taskToken=token, error="ChunkFailed", cause=cause[:32000])

    @contextlib.contextmanager
    def _heartbeats(self, message: ChunkMessage) -> Iterator[None]:
        """Tell the waiting Map item, every ``ETL_HEARTBEAT_INTERVAL_S`` while the chunk is worked on, that its
        worker lives (``SendTaskHeartbeat``): a worker that dies is noticed within the item's HeartbeatSeconds,
        not after the whole chunk timeout."""
        if not message.task_token:
            yield
            return
        stop = threading.Event()

        def beat() -> None:
            while True:
                try:
                    self.sfn.send_task_heartbeat(taskToken=message.task_token)
                except ClientError as exc:  # the item gave up or ended: the ledger keeps the outcome
                    logger.info("heartbeat not taken", extra={"code": exc.response.get("Error", {}).get("Code")})
                    return
                except Exception as exc:  # noqa: BLE001 - a missed heartbeat is retried at the next interval
                    logger.warning("heartbeat failed", extra={"error": str(exc)})
                if stop.wait(self.settings.heartbeat_interval_s):
                    return

        thread = threading.Thread(target=beat, name=f"{threading.current_thread().name}-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()

    def _report_success(self, message: ChunkMessage, output: dict[str, Any]) -> None:
        if message.task_token:
            self._callback("send_task_success", taskToken=message.task_token,
                           output=json.dumps({k: output[k] for k in ("chunk_id", "status")}))

    def _callback(self, method: str, **kwargs: Any) -> None:
        try:
            getattr(self.sfn, method)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _GONE_TOKEN_ERRORS:
                logger.warning("the orchestrator no longer waits for this chunk; the ledger keeps its outcome",
                               extra={"callback": method, "code": code})
                return
            raise TransientError(f"{method} failed: {code or exc}") from exc


_workers = threading.local()
_client_lock = threading.Lock()


def _dynamodb_client() -> Any:
    """The idempotency store's DynamoDB client, from boto3's default session: its loaded service models are
    shared, where Powertools' own new session per store would parse them again for every worker (the local
    emulator runs several in one process). Making clients is not thread-safe, hence the lock."""
    with _client_lock:
        return boto3.client("dynamodb")


def container_worker(factory: Callable[[], ChunkWorker]) -> ChunkWorker:
    """The worker of this container (thread): built once, at the first invocation."""
    worker: ChunkWorker | None = getattr(_workers, "worker", None)
    if worker is None:
        worker = factory()
        _workers.worker = worker
    return worker
