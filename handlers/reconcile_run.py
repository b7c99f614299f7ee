"""ReconcileRun: decide the run's outcome from the ledger; AbortRun (same function, with ``failed_step``)
marks a run FAILED when one of its steps failed for good."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from chunking import pipeline, runtime

logger = Logger()


@logger.inject_lambda_context(correlation_id_path="run.correlation_id")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    conn = runtime.database(runtime.settings())
    if event.get("failed_step"):
        aborted = pipeline.abort(event, conn)
        logger.error("run aborted", extra={"run_id": event["run"]["run_id"], "cause": aborted["Cause"]})
        return aborted
    outcome = pipeline.reconcile(event, conn)
    logger.info("run reconciled", extra={k: outcome[k] for k in ("run_id", "status", "chunks", "counts", "error")})
    return outcome
