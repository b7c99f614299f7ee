"""The deployed cloud: the stack's state machine and dead-letter queue, behind the interface of LocalCloud.

``etl-pipeline run`` and ``redrive`` without ``--local`` drive the stack that ``sam deploy`` created. The
state machine, the chunk queue and its dead-letter queue are found in the CloudFormation stack's outputs
(``template.yaml``, ``Outputs``), by stack name: ``--stack-name``, else ``ETL_STACK_NAME``. Without a stack
name, explicit ``STATE_MACHINE_ARN`` and ``CHUNK_DLQ_URL`` (and optionally ``CHUNK_QUEUE_URL``) do.

The workers are the stack's SQS event source mapping, so :meth:`AwsCloud.start_workers` does nothing; the
ledger in PostgreSQL, not this class, tells how the chunks went."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chunking.errors import ConfigError, EtlError
from chunking.queues import read_dead_letters
from chunking.runner import wait_for

STACK_NAME_ENV = "ETL_STACK_NAME"
STATE_MACHINE_ARN_ENV = "STATE_MACHINE_ARN"
CHUNK_QUEUE_URL_ENV = "CHUNK_QUEUE_URL"
CHUNK_DLQ_URL_ENV = "CHUNK_DLQ_URL"

# The stack outputs this module reads (template.yaml declares them; tests/deploy checks they agree).
OUTPUT_STATE_MACHINE_ARN = "StateMachineArn"
OUTPUT_CHUNK_QUEUE_URL = "ChunkQueueUrl"
OUTPUT_CHUNK_DLQ_URL = "ChunkDlqUrl"
REQUIRED_OUTPUTS = (OUTPUT_STATE_MACHINE_ARN, OUTPUT_CHUNK_DLQ_URL)

_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 6})
_SQS_URL_REGION = re.compile(r"^https://sqs[.-]([a-z0-9-]+)\.amazonaws\.com")


class AwsError(EtlError):
    """A call to AWS failed (permissions, throttling beyond the retries, a missing resource)."""


@dataclasses.dataclass(frozen=True)
class StackResources:
    """What the CLI drives: the state machine, and the queues of its chunks."""

    state_machine_arn: str
    chunk_dlq_url: str
    chunk_queue_url: str | None
    source: str  # "stack NAME" or "environment", for messages

    @property
    def region(self) -> str:
        return self.state_machine_arn.split(":")[3]


def resolve_resources(stack_name: str | None = None, *, env: Mapping[str, str] | None = None,
                      region: str | None = None) -> StackResources:
    """The deployed resources: from the outputs of ``stack_name`` (or ``ETL_STACK_NAME``), else from explicit
    ``STATE_MACHINE_ARN`` / ``CHUNK_DLQ_URL``. An explicit stack name wins over the environment."""
    env = os.environ if env is None else env
    if not stack_name and env.get(STATE_MACHINE_ARN_ENV):
        dlq_url = env.get(CHUNK_DLQ_URL_ENV)
        if not dlq_url:
            raise ConfigError(f"{STATE_MACHINE_ARN_ENV} is set but {CHUNK_DLQ_URL_ENV} is not: set both, or give "
                              f"the stack instead (--stack-name or {STACK_NAME_ENV})")
        return StackResources(env[STATE_MACHINE_ARN_ENV], dlq_url, env.get(CHUNK_QUEUE_URL_ENV) or None,
                              "environment")
    stack_name = stack_name or env.get(STACK_NAME_ENV)
    if not stack_name:
        raise ConfigError(f"running against AWS needs the deployed stack: pass --stack-name or set {STACK_NAME_ENV} "
                          f"(or {STATE_MACHINE_ARN_ENV} and {CHUNK_DLQ_URL_ENV}); use --local to run on this machine")
    outputs = stack_outputs(stack_name, region=region)
    missing = [key for key in REQUIRED_OUTPUTS if not outputs.get(key)]
    if missing:
        raise ConfigError(f"stack {stack_name} has no output {', '.join(missing)}: is it this project's stack, "
                          "fully deployed?")
    return StackResources(outputs[OUTPUT_STATE_MACHINE_ARN], outputs[OUTPUT_CHUNK_DLQ_URL],
                          outputs.get(OUTPUT_CHUNK_QUEUE_URL) or None, f"stack {stack_name}")


def stack_outputs(stack_name: str, *, region: str | None = None) -> dict[str, str]:
    """The outputs of a CloudFormation stack, by key."""
    try:
        cloudformation = boto3.client("cloudformation", region_name=region, config=_CLIENT_CONFIG)
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in str(error.get("Message", "")):
            raise ConfigError(f"stack {stack_name} does not exist in {cloudformation.meta.region_name}: check "
                              "--stack-name and the AWS region (AWS_REGION or the profile's)") from None
        raise ConfigError(f"cannot read stack {stack_name}: {_describe(exc)}") from None
    except BotoCoreError as exc:  # no region, no credentials, no network
        raise ConfigError(f"cannot read stack {stack_name}: {exc}") from None
    if not stacks:
        raise ConfigError(f"stack {stack_name} does not exist")
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", []) if "OutputKey" in o}


class AwsCloud:
    """The deployed stack, with the interface :func:`chunking.runner.follow` drives (see ``runner.Cloud``)."""

    def __init__(self, stack_name: str | None = None, *, env: Mapping[str, str] | None = None,
                 region: str | None = None, poll_interval_s: float = 2.0, receive_wait_s: int = 1,
                 max_letters: int = 10_000) -> None:
        self.resources = resolve_resources(stack_name, env=env, region=region)
        self.state_machine_arn = self.resources.state_machine_arn
        self.dlq_url = self.resources.chunk_dlq_url
        self.queue_url = self.resources.chunk_queue_url or ""
        self.poll_interval_s = poll_interval_s
        self.receive_wait_s = receive_wait_s
        self.max_letters = max_letters
        try:
            self._sfn = boto3.client("stepfunctions", region_name=self.resources.region, config=_CLIENT_CONFIG)
            self._sqs = boto3.client("sqs", region_name=_sqs_region(self.dlq_url) or self.resources.region,
                                     config=_CLIENT_CONFIG)
        except BotoCoreError as exc:
            raise ConfigError(f"cannot create AWS clients: {exc}") from None

    # --- lifecycle -----------------------------------------------------------------------------------------

    def __enter__(self) -> AwsCloud:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for client in (self._sfn, self._sqs):
            client.close()

    def start_workers(self) -> None:
        """Nothing to start: the stack's event source mapping runs the chunk worker."""

    def stop_taking_chunks(self) -> None:
        """Nothing to stop here: a run in AWS goes on without this process (``follow`` says so)."""

    def stop_workers(self) -> None:
        """The stack's workers are not this process's to stop."""

    @property
    def metric_records(self) -> list[dict[str, Any]]:
        """None read here: a run in AWS sends its metrics to CloudWatch."""
        return []

    # --- executions ----------------------------------------------------------------------------------------

    def start_execution(self, name: str, payload: dict[str, Any]) -> str:
        try:
            started = self._sfn.start_execution(stateMachineArn=self.state_machine_arn, name=name,
                                                input=json.dumps(payload))
        except (ClientError, BotoCoreError) as exc:
            raise AwsError(f"cannot start execution {name} of {self.state_machine_arn}: {_describe(exc)}") from None
        return str(started["executionArn"])

    def describe(self, execution_arn: str) -> dict[str, Any]:
        try:
            return dict(self._sfn.describe_execution(executionArn=execution_arn))
        except (ClientError, BotoCoreError) as exc:
            raise AwsError(f"cannot describe execution {execution_arn}: {_describe(exc)}") from None

    def wait(self, execution_arn: str, on_tick: Callable[[], None] | None = None,
             interval_s: float | None = None) -> dict[str, Any]:
        """Block until the execution ends (polling DescribeExecution), calling ``on_tick`` between polls."""
        return wait_for(self.describe, execution_arn, on_tick,
                        self.poll_interval_s if interval_s is None else interval_s)

    # --- the dead-letter queue -----------------------------------------------------------------------------

    def dead_letters(self, *, delete: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """Every message in the chunk dead-letter queue (see :func:`chunking.queues.read_dead_letters`)."""
        try:
            return read_dead_letters(self._sqs, self.dlq_url, delete=delete, wait_s=self.receive_wait_s,
                                     max_letters=self.max_letters)
        except (ClientError, BotoCoreError) as exc:
            raise AwsError(f"cannot read the dead-letter queue {self.dlq_url}: {_describe(exc)}") from None


def _sqs_region(url: str) -> str | None:
    match = _SQS_URL_REGION.match(url)
    return match.group(1) if match else None


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'ClientError')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc)


def execution_status(execution_name: str, stack_name: str | None = None) -> str:
    """The status of one execution of the deployed state machine, by name (RUNNING, SUCCEEDED, ...)."""
    resources = resolve_resources(stack_name)
    arn = resources.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + execution_name
    try:
        client = boto3.client("stepfunctions", region_name=resources.region, config=_CLIENT_CONFIG)
        return str(client.describe_execution(executionArn=arn)["status"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            return "GONE"
        raise AwsError(f"cannot describe execution {execution_name}: {_describe(exc)}") from None
    except BotoCoreError as exc:
        raise AwsError(f"cannot describe execution {execution_name}: {exc}") from None
