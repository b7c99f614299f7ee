"""ValidateConfig: check the execution's request and the settings, then begin (or reopen) the run."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from chunking import pipeline, runtime

logger = Logger()
tracer = Tracer(patch_modules=["boto3", "botocore"])


@logger.inject_lambda_context(correlation_id_path="execution_name")
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    cfg = runtime.settings()
    run = pipeline.validate_config(event, runtime.database(cfg, context), cfg,
                                  runtime.execution_status(event.get("state_machine")))
    logger.append_keys(run_id=run["run_id"])
    logger.info("run begun", extra={"mode": run["mode"], "window": f"{run['window_start']}..{run['window_end']}"})
    return run


