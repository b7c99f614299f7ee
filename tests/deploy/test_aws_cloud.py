"""The AWS mode of the CLI: AwsCloud finds the deployed state machine and dead-letter queue from the stack's
outputs, starts and follows executions, and reads the dead-letter queue in the emulator's shape; `run` and
`redrive` use it when not --local. Against moto's CloudFormation, Step Functions and SQS."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

import boto3
import pytest

from chunking import aws as deployed
from chunking import ledger, tasks
from chunking.aws import AwsCloud
from chunking.cli import main
from chunking.drills import fault_drill
from chunking.errors import ConfigError
from chunking.planner import fixed_sizing
from chunking.queues import letter_of
from chunking.runner import execution_error
from chunking.settings import Settings
from tests.factories import insert, visit

STACK = "conflict-map-test"
PASS = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
WAIT_THEN_FAIL = {"StartAt": "Wait", "States": {
    "Wait": {"Type": "Wait", "Seconds": 1, "Next": "Fail"},
    "Fail": {"Type": "Fail", "Error": "RunFailed", "Cause": "1 of 3 chunks did not succeed"}}}

Deploy = Callable[..., dict[str, str]]


@pytest.fixture
def deploy(aws: None) -> Deploy:
    """Create a stack shaped like template.yaml's outputs (queues and a state machine), return its outputs."""
    def create(definition: dict[str, Any] = PASS, *, name: str = STACK,
               outputs: tuple[str, ...] = (deployed.OUTPUT_STATE_MACHINE_ARN, deployed.OUTPUT_CHUNK_QUEUE_URL,
                                           deployed.OUTPUT_CHUNK_DLQ_URL)) -> dict[str, str]:
        # The state machine is created directly: moto's CloudFormation puts state machines where its
        # executing Step Functions interpreter does not look.
        machine = boto3.client("stepfunctions").create_state_machine(
            name=f"{name}-ConflictMapStateMachine", definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/conflict-map-state-machine")["stateMachineArn"]
        values = {deployed.OUTPUT_STATE_MACHINE_ARN: machine, deployed.OUTPUT_CHUNK_QUEUE_URL: {"Ref": "ChunkQueue"},
                  deployed.OUTPUT_CHUNK_DLQ_URL: {"Ref": "ChunkDeadLetterQueue"}}
        body = {
            "Resources": {
                "ChunkQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"{name}-chunks"}},
                "ChunkDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"{name}-chunks-dlq"}},
            },
            "Outputs": {key: {"Value": value} for key, value in values.items() if key in outputs},
        }
        cloudformation = boto3.client("cloudformation")
        cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(body))
        return {o["OutputKey"]: o["OutputValue"]
                for o in cloudformation.describe_stacks(StackName=name)["Stacks"][0].get("Outputs", [])}
    return create


# --- finding the stack ---------------------------------------------------------------------------------------

def test_finds_state_machine_and_queues_from_the_stack_outputs(deploy: Deploy) -> None:
    outputs = deploy()

    with AwsCloud(STACK, env={}) as cloud:
        assert cloud.state_machine_arn == outputs[deployed.OUTPUT_STATE_MACHINE_ARN]
        assert cloud.dlq_url == outputs[deployed.OUTPUT_CHUNK_DLQ_URL]
        assert cloud.queue_url == outputs[deployed.OUTPUT_CHUNK_QUEUE_URL]
        assert cloud.resources.source == f"stack {STACK}"


def test_takes_the_stack_name_from_the_environment(deploy: Deploy) -> None:
    outputs = deploy()

    cloud = AwsCloud(env={deployed.STACK_NAME_ENV: STACK})

    assert cloud.state_machine_arn == outputs[deployed.OUTPUT_STATE_MACHINE_ARN]


def test_explicit_arns_need_no_stack_and_a_stack_name_wins_over_them(deploy: Deploy) -> None:
    outputs = deploy()
    env = {deployed.STATE_MACHINE_ARN_ENV: "arn:aws:states:eu-west-1:123456789012:stateMachine:elsewhere",
           deployed.CHUNK_DLQ_URL_ENV: "https://sqs.eu-west-1.amazonaws.com/123456789012/elsewhere-dlq"}

    from_env = AwsCloud(env=env)
    from_stack = AwsCloud(STACK, env=env)

    assert (from_env.state_machine_arn, from_env.dlq_url, from_env.resources.source) == (
        env[deployed.STATE_MACHINE_ARN_ENV], env[deployed.CHUNK_DLQ_URL_ENV], "environment")
    assert from_env.resources.region == "eu-west-1"
    assert from_stack.state_machine_arn == outputs[deployed.OUTPUT_STATE_MACHINE_ARN]


@pytest.mark.parametrize(("stack", "env", "message"), [
    (None, {}, "pass --stack-name or set ETL_STACK_NAME"),
    ("no-such-stack", {}, "stack no-such-stack does not exist in us-east-1"),
    (None, {deployed.STATE_MACHINE_ARN_ENV: "arn:aws:states:us-east-1:123456789012:stateMachine:x"},
     "CHUNK_DLQ_URL is not"),
])
def test_says_in_one_line_what_is_missing(aws: None, stack: str | None, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        AwsCloud(stack, env=env)
    assert "\n" not in str(raised.value)


def test_a_stack_without_the_outputs_is_named_with_what_it_lacks(deploy: Deploy) -> None:
    deploy(outputs=(deployed.OUTPUT_CHUNK_QUEUE_URL,))

    with pytest.raises(ConfigError, match=f"stack {STACK} has no output StateMachineArn, ChunkDlqUrl"):
        AwsCloud(STACK, env={})


# --- executions ----------------------------------------------------------------------------------------------

def test_starts_an_execution_and_waits_until_it_ends(deploy: Deploy) -> None:
    deploy(WAIT_THEN_FAIL)
    ticks: list[int] = []
    payload = {"trigger": "cli", "start_date": "2026-10-01", "end_date": "2026-10-07"}

    with AwsCloud(STACK, env={}, poll_interval_s=0.1) as cloud:
        cloud.start_workers()  # nothing to start in AWS
        arn = cloud.start_execution("cli-2026-10-01-2026-10-07-test", payload)
        described = cloud.wait(arn, on_tick=lambda: ticks.append(1))

    assert arn.endswith(":cli-2026-10-01-2026-10-07-test")
    assert described["status"] == "FAILED" and json.loads(described["input"]) == payload
    assert execution_error(described) == "RunFailed: 1 of 3 chunks did not succeed"
    assert ticks, "on_tick was never called while the execution ran"


def test_a_refused_start_is_an_error_naming_the_execution(deploy: Deploy) -> None:
    deploy()
    with AwsCloud(STACK, env={}) as cloud:
        cloud.start_execution("same-name", {})
        with pytest.raises(deployed.AwsError, match="cannot start execution same-name"):
            cloud.start_execution("same-name", {"different": "input"})


# --- the dead-letter queue -----------------------------------------------------------------------------------

def _dead_letter(sqs: Any, url: str, run_id: int, chunk_id: int) -> None:
    """A chunk message as the worker dead-letters it (body and reason attributes)."""
    body = json.dumps({"run_id": run_id, "chunk_id": chunk_id, "chunk_start": "2026-10-01",
                       "chunk_end": "2026-10-07", "correlation_id": "cli-test", "task_token": "token"})
    sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes={
        "error_type": {"DataType": "String", "StringValue": "TransientError"},
        "error": {"DataType": "String", "StringValue": "fault drill"},
        "attempts": {"DataType": "Number", "StringValue": "5"}})


def test_dead_letters_come_in_the_emulator_shape_and_only_accepted_ones_are_deleted(deploy: Deploy) -> None:
    outputs = deploy()
    sqs = boto3.client("sqs")
    for chunk_id in (1, 2, 3):
        _dead_letter(sqs, outputs[deployed.OUTPUT_CHUNK_DLQ_URL], 9, chunk_id)
    sqs.send_message(QueueUrl=outputs[deployed.OUTPUT_CHUNK_DLQ_URL], MessageBody="not json")

    with AwsCloud(STACK, env={}, receive_wait_s=0) as cloud:
        letters = cloud.dead_letters(delete=lambda letter: (letter["body"] or {}).get("chunk_id") == 2)
        left = cloud.dead_letters()

    assert len(letters) == 4
    expected = letter_of({"Body": letters[0]["raw_body"], "MessageAttributes": {}, "Attributes": {}})
    assert all(set(letter) == set(expected) for letter in letters)
    by_chunk = {(letter["body"] or {}).get("chunk_id"): letter for letter in letters}
    assert by_chunk[1]["attributes"] == {"error_type": "TransientError", "error": "fault drill", "attempts": "5"}
    assert by_chunk[None]["body"] is None and by_chunk[None]["raw_body"] == "not json"
    assert sorted((letter["body"] or {}).get("chunk_id", 0) for letter in left) == [0, 1, 3]


# --- the CLI, without --local --------------------------------------------------------------------------------

def test_cli_run_starts_the_stacks_state_machine_with_the_window(deploy: Deploy, conn, database_url: str,
                                                                capsys) -> None:
    outputs = deploy()

    code = main(["run", "--start", "2026-10-01", "--end", "2026-10-07", "--stack-name", STACK, "--json",
                 "--database-url", database_url])

    [execution] = boto3.client("stepfunctions").list_executions(
        stateMachineArn=outputs[deployed.OUTPUT_STATE_MACHINE_ARN])["executions"]
    described = boto3.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])
    request = json.loads(described["input"])
    assert (request["trigger"], request["start_date"], request["end_date"]) == ("cli", "2026-10-01", "2026-10-07")
    # This stand-in state machine has no ValidateConfig, so no run was recorded: the CLI says so and fails.
    assert code == 1
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["run_id"], summary["execution_status"]) == (None, "SUCCEEDED")  # followed to its end


def test_cli_run_without_a_stack_says_how_to_name_one(aws: None, conn, database_url: str, monkeypatch,
                                                      capsys) -> None:
    for name in (deployed.STACK_NAME_ENV, deployed.STATE_MACHINE_ARN_ENV):
        monkeypatch.delenv(name, raising=False)

    code = main(["run", "--start", "2026-10-01", "--end", "2026-10-07", "--database-url", database_url])

    assert code == 2
    assert "--stack-name" in capsys.readouterr().err


def _failed_run(conn) -> dict[str, Any]:
    """A run whose only chunk failed for good (a fault drill), reconciled FAILED."""
    insert(conn, visit(1, "2026-10-02", "09:00", "11:00", provider=1), visit(2, "2026-10-02", "10:00", "12:00",
                                                                         provider=2))
    run = ledger.begin_run(conn, execution_name="cli-failed", trigger="cli", executor="test",
                           window_start=date(2026, 10, 1), window_end=date(2026, 10, 7), chunk_days=7,
                           max_chunk_rows=10**6, max_concurrency=1)
    tasks.stage_visits(conn, run["run_id"], date(2026, 10, 1), date(2026, 10, 7))
    [chunk] = tasks.plan_run(conn, run, fixed_sizing(7, 10**6))
    with pytest.raises(Exception, match="fault drill"):
        tasks.apply_chunk(conn, run_id=run["run_id"], chunk_id=chunk.chunk_id, chunk_start=chunk.start,
                          chunk_end=chunk.end, worker="test", remaining_ms=lambda: 60_000, margin_ms=1_000,
                          final_attempt=True,
                          before_commit=fault_drill(Settings(fault_chunks=frozenset({chunk.start}))))
    assert tasks.reconcile_run(conn, run["run_id"]).status == "FAILED"
    return run


def test_cli_redrive_dry_run_finds_the_failed_chunk_in_the_stacks_dead_letter_queue(
        deploy: Deploy, conn, database_url: str, capsys) -> None:
    outputs = deploy()
    run = _failed_run(conn)
    _dead_letter(boto3.client("sqs"), outputs[deployed.OUTPUT_CHUNK_DLQ_URL], run["run_id"], 1)

    code = main(["redrive", "--run-id", str(run["run_id"]), "--dry-run", "--json", "--stack-name", STACK,
                 "--database-url", database_url])

    assert code == 0
    plan = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(c["chunk_id"], c["status"], c["in_dead_letter_queue"]) for c in plan["would_redrive"]] == [
        (1, "FAILED", True)]
