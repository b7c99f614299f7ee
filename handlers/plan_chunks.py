"""PlanChunks: split the run's window into chunks from its staged rows (or list a redrive's chunks)."""

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
    with observability.step("PlanChunks", event, cfg.environment, logger) as metrics:
        plan = pipeline.plan(event, runtime.database(cfg, context), cfg)
        metrics.add_metric(name=observability.CHUNKS_PLANNED, unit=MetricUnit.Count, value=plan["count"])
    logger.info("chunks planned", extra={"chunks": plan["count"], "estimated_rows": plan["estimated_rows"],
                                         "sizing": plan["sizing"]})
    return plan
