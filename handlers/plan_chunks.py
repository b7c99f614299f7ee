"""PlanChunks: split the run's window into chunks from its staged rows (or list a redrive's chunks)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from chunking import pipeline, runtime

logger = Logger()


@logger.inject_lambda_context(correlation_id_path="run.correlation_id")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    cfg = runtime.settings()
    plan = pipeline.plan(event, runtime.database(cfg), cfg)
    logger.info("chunks planned", extra={"run_id": event["run"]["run_id"], "chunks": plan["count"],
                                         "estimated_rows": plan["estimated_rows"], "sizing": plan["sizing"]})
    return plan
