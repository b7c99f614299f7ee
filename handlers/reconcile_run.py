"""ReconcileRun: decide the run's outcome from the ledger; AbortRun (same function, with ``failed_step``)
marks a run FAILED when one of its steps failed for good."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from chunking import observability, pipeline, runtime

logger = Logger()
tracer = Tracer(patch_modules=["boto3", "botocore"])


@logger.inject_lambda_context(correlation_id_path="run.correlation_id")
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    cfg = runtime.settings()
    with observability.step("ReconcileRun", event, cfg.environment, logger) as metrics:
        if event.get("failed_step"):
            aborted = pipeline.abort(event, runtime.database(cfg, context))
            observability.run_ended(metrics, {"status": "FAILED"})
            logger.error("run aborted", extra={"cause": aborted["Cause"]})
            return aborted
        outcome = pipeline.reconcile(event, runtime.database(cfg, context))
        observability.run_ended(metrics, outcome)
    logger.info("run reconciled", extra={k: outcome[k] for k in ("status", "chunks", "counts", "rejected", "error")})
    return outcome
