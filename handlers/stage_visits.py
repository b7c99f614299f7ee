"""StageVisits (Task 01): stage the run's eligible visits and sync its rejected visits."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from chunking import pipeline, runtime

logger = Logger()


@logger.inject_lambda_context(correlation_id_path="run.correlation_id")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    staged = pipeline.stage(event, runtime.database(runtime.settings()))
    logger.info("visits staged", extra={"run_id": event["run"]["run_id"], **staged})
    return staged
