"""ChunkWorker: an SQS batch of chunk messages; each applies Task 02 to one date range exactly once.

Partial batch failures: a record that should be retried is reported back, the others are deleted.
Every log line of a record carries the run's correlation id (the execution name), run and chunk ids."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from chunking import observability, runtime
from chunking.messages import correlation_of

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"chunking"})
tracer = Tracer(patch_modules=["boto3", "botocore"])
RECORD_KEYS = ("correlation_id", "run_id", "chunk_id", "attempt")


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    worker = runtime.chunk_worker(context)
    metrics = observability.invocation_metrics("ChunkWorker", worker.settings.environment)

    def record_handler(record: SQSRecord) -> dict[str, Any]:
        ids = correlation_of(record.body)
        attempt = int(record.attributes.approximate_receive_count or 1)
        logger.thread_safe_append_keys(**ids, attempt=attempt)
        observability.correlate(metrics, **ids)
        try:
            with observability.subsegment("chunk", **{k: v for k, v in ids.items() if k != "correlation_id"}):
                output = worker.process(record, context.get_remaining_time_in_millis)
        finally:
            logger.thread_safe_remove_keys(RECORD_KEYS)
        if output.get("status") == "DEAD_LETTERED":
            observability.chunk_gave_up(metrics, attempt)
        else:
            observability.chunk_done(metrics, output, attempt)
        return output

    # A processor per invocation: it holds the batch's state, and the local emulator runs several
    # invocations at once in one process (a Lambda container runs one at a time).
    processor = BatchProcessor(event_type=EventType.SQS)
    with observability.published(metrics):
        return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                        context=context)

