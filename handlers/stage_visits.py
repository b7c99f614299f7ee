"""StageVisits (Task 01): stage the run's eligible visits and sync its rejected visits."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from chunking import observability, pipeline, runtime

logger = Logger()
tracer = Tracer(patch_modules=["boto3", "botocore"])


@logger.inject_lambda_context(correlation_id_path="run.correlation_id")
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    cfg = runtime.settings()
    with observability.step("StageVisits", event, cfg.environment, logger) as metrics:
        staged = pipeline.stage(event, runtime.database(cfg, context),
                                reader=lambda: runtime.reader_database(cfg, context))
        metrics.add_metric(name=observability.ROWS_STAGED, unit=MetricUnit.Count, value=staged["staged_rows"])
    logger.info("visits staged", extra=staged)
    return staged
