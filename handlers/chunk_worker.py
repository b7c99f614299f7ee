"""ChunkWorker: an SQS batch of chunk messages; each applies Task 02 to one date range exactly once.

Partial batch failures: a record that should be retried is reported back, the others are deleted."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from chunking import runtime

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"chunking"})


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    worker = runtime.chunk_worker(context)
    # A processor per invocation: it holds the batch's state, and the local emulator runs several
    # invocations at once in one process (a Lambda container runs one at a time).
    processor = BatchProcessor(event_type=EventType.SQS)

    def record_handler(record: SQSRecord) -> dict:
        return worker.process(record, context.get_remaining_time_in_millis)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
