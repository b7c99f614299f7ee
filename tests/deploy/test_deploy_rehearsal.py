"""A deploy rehearsal: template.yaml through the SAM transform (aws-sam-translator, what CloudFormation runs),
and the resulting resources checked: the chunk queue and its event source mapping, the dead-letter queues,
the schedule, the alarms, and every IAM permission (named resources, no wildcard actions, and what the code
calls is allowed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chunking.messages import RunRequest
from tests.deploy import sam

# Resource "*" only for actions that support no resource-level permissions (README, Deploy to AWS).
STAR_RESOURCE_ACTIONS = {
    # Step Functions' CloudWatch Logs delivery.
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    # Task tokens: the chunk worker answers the waiting Map item.
    "states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat",
}
# AWS managed policies SAM attaches (Resource "*" inside): logs for every function, X-Ray for active
# tracing, and the ENI actions Lambda needs to place a function in the VPC.
MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
}


@pytest.fixture(scope="module")
def cfn(template: dict[str, Any]) -> dict[str, Any]:
    return sam.translate(template)


def one(cfn: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    [(name, resource)] = sam.resources_of_type(cfn, kind).items()
    return name, resource["Properties"]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(cfn: dict[str, Any], role: str) -> list[dict[str, Any]]:
    props = cfn["Resources"][role]["Properties"]
    return [s for policy in props.get("Policies", []) for s in _list(policy["PolicyDocument"]["Statement"])]


def allowed(cfn: dict[str, Any], role: str, action: str) -> list[Any]:
    """The resources a role's inline statements allow ``action`` on."""
    return [resource for s in statements(cfn, role) if s["Effect"] == "Allow" and action in _list(s["Action"])
            for resource in _list(s["Resource"])]


def getatt(resource: str, attribute: str = "Arn") -> dict[str, Any]:
    return {"Fn::GetAtt": [resource, attribute]}


def test_worker_event_source_reports_batch_item_failures_with_bounded_concurrency(cfn, template) -> None:
    _, mapping = one(cfn, "AWS::Lambda::EventSourceMapping")
    assert mapping["FunctionName"] == {"Ref": "ChunkWorkerFunction"}
    assert mapping["EventSourceArn"] == getatt("ChunkQueue")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 1
    assert mapping["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "WorkerMaxConcurrency"}
    parameter = template["Parameters"]["WorkerMaxConcurrency"]
    assert 2 <= parameter["MinValue"] <= parameter["Default"] <= parameter["MaxValue"] <= 1000


def test_chunk_queue_redrives_to_its_dead_letter_queue_after_at_least_five_receives(cfn, template) -> None:
    queue = cfn["Resources"]["ChunkQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == getatt("ChunkDeadLetterQueue")
    assert queue["RedrivePolicy"]["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    parameter = template["Parameters"]["MaxReceiveCount"]
    assert parameter["Default"] == 5 and parameter["MinValue"] >= 5
    dlq = cfn["Resources"]["ChunkDeadLetterQueue"]["Properties"]
    assert dlq["SqsManagedSseEnabled"] is True
    assert dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
    assert dlq["RedriveAllowPolicy"]["redrivePermission"] == "byQueue"
    [source] = dlq["RedriveAllowPolicy"]["sourceQueueArns"]
    assert source == {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:"
                                  + queue["QueueName"]["Fn::Sub"]}


def test_visibility_timeout_is_at_least_six_worker_timeouts_for_every_allowed_timeout(cfn, template) -> None:
    worker = cfn["Resources"]["ChunkWorkerFunction"]["Properties"]
    assert worker["Timeout"] == {"Ref": "WorkerTimeoutSeconds"}
    mapping_name, key, attribute = cfn["Resources"]["ChunkQueue"]["Properties"]["VisibilityTimeout"]["Fn::FindInMap"]
    assert key == {"Ref": "WorkerTimeoutSeconds"}
    parameter = template["Parameters"]["WorkerTimeoutSeconds"]
    assert parameter["Default"] in parameter["AllowedValues"]
    for timeout in parameter["AllowedValues"]:
        visibility = cfn["Mappings"][mapping_name][str(timeout)][attribute]
        assert 6 * timeout <= visibility <= 43_200, timeout
        assert timeout <= 900


def test_schedule_starts_stale_runs_over_the_lookback_horizon_by_default_or_the_plain_window(cfn) -> None:
    _, schedule = one(cfn, "AWS::Scheduler::Schedule")
    target = schedule["Target"]
    assert target["Arn"] == {"Ref": "ConflictMapStateMachine"}
    condition, stale_input, window_input = target["Input"]["Fn::If"]
    assert cfn["Conditions"][condition] == {"Fn::Equals": [{"Ref": "ScheduleMode"}, "stale"]}
    assert cfn["Parameters"]["ScheduleMode"]["Default"] == "stale"
    stale, window = RunRequest.parse(json.loads(stale_input)), RunRequest.parse(json.loads(window_input))
    for request in (stale, window):  # no dates: ValidateConfig takes the window from the execution's start
        assert (request.trigger, request.start_date, request.end_date) == ("schedule", None, None)
    assert stale.stale and not window.stale
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert target["DeadLetterConfig"]["Arn"] == getatt("ScheduleDeadLetterQueue")
    assert schedule["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert schedule["ScheduleExpressionTimezone"] == {"Ref": "ScheduleTimezone"}
    assert "Name" not in schedule  # generated, so dev and prod stacks can share an account
    role = target["RoleArn"]["Fn::GetAtt"][0]
    assert allowed(cfn, role, "states:StartExecution") == [{"Ref": "ConflictMapStateMachine"}]
    assert allowed(cfn, role, "sqs:SendMessage") == [getatt("ScheduleDeadLetterQueue")]


def test_state_machine_is_standard_logged_traced_and_fully_substituted(cfn) -> None:
    _, machine = one(cfn, "AWS::StepFunctions::StateMachine")
    assert machine["StateMachineType"] == "STANDARD"
    assert machine["TracingConfiguration"] == {"Enabled": True}
    [destination] = machine["LoggingConfiguration"]["Destinations"]
    assert destination["CloudWatchLogsLogGroup"]["LogGroupArn"] == getatt("StateMachineLogGroup")
    assert set(machine["DefinitionSubstitutions"]) == sam.asl_placeholders()


def test_alarms_watch_the_dead_letter_queues_and_failed_executions(cfn) -> None:
    alarms = sam.resources_of_type(cfn, "AWS::CloudWatch::Alarm")
    watched_queues = {a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in alarms.values()
                      if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"}
    assert watched_queues == {"ChunkDeadLetterQueue", "ScheduleDeadLetterQueue"}
    failed = [a["Properties"] for a in alarms.values() if any(
        m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == "ExecutionsFailed"
        for m in a["Properties"].get("Metrics", []))]
    assert len(failed) == 1
    for metric in failed[0]["Metrics"]:
        if "MetricStat" in metric:
            assert metric["MetricStat"]["Metric"]["Dimensions"] == [
                {"Name": "StateMachineArn", "Value": {"Ref": "ConflictMapStateMachine"}}]
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    subscription = cfn["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlertEmail"
    assert subscription["Properties"]["TopicArn"] == {"Ref": "AlarmTopic"}


def test_every_iam_statement_names_its_resources_and_no_action_is_a_wildcard(cfn) -> None:
    roles = sam.resources_of_type(cfn, "AWS::IAM::Role")
    assert len(roles) == 7  # five functions, the state machine, the schedule
    assert not sam.resources_of_type(cfn, "AWS::IAM::Policy")
    assert not sam.resources_of_type(cfn, "AWS::IAM::ManagedPolicy")
    for name, role in roles.items():
        assert set(role["Properties"].get("ManagedPolicyArns", [])) <= MANAGED_POLICIES, name
        for statement in statements(cfn, name):
            assert statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
            actions = _list(statement["Action"])
            assert not [a for a in actions if "*" in a], f"{name}: wildcard action in {actions}"
            resources = _list(statement["Resource"])
            if "*" in resources:
                assert set(actions) <= STAR_RESOURCE_ACTIONS, f"{name}: {actions} on Resource '*'"
            assert all(r == "*" or not isinstance(r, str) or "*" not in r for r in resources), name


def test_roles_allow_what_the_code_calls_on_the_resources_it_calls(cfn, template) -> None:
    secret = {"Fn::Sub": ["${secretArn}", {"secretArn": {"Ref": "DbSecretArn"}}]}
    for name in sam.functions(template):
        assert allowed(cfn, f"{name}Role", "secretsmanager:GetSecretValue") == [secret], name
    worker = "ChunkWorkerFunctionRole"
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"):
        assert allowed(cfn, worker, action) == [getatt("ChunkQueue")], action
    assert allowed(cfn, worker, "sqs:SendMessage") == [getatt("ChunkDeadLetterQueue")]
    for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
        assert allowed(cfn, worker, action) == [getatt("IdempotencyTable")], action
    for action in ("states:SendTaskSuccess", "states:SendTaskFailure"):
        assert allowed(cfn, worker, action) == ["*"], action
    machine = "ConflictMapStateMachineRole"
    substituted = {key.removesuffix("Arn") for key in sam.asl_placeholders() if key.endswith("FunctionArn")}
    assert allowed(cfn, machine, "lambda:InvokeFunction") == [getatt(f) for f in sorted(
        substituted, key=list(sam.functions(template)).index)]
    assert allowed(cfn, machine, "sqs:SendMessage") == [getatt("ChunkQueue")]


def test_outputs_give_the_cli_the_state_machine_and_the_queues(cfn) -> None:
    assert {"StateMachineArn", "ChunkQueueUrl", "ChunkDlqUrl", "IdempotencyTableName"} <= set(cfn["Outputs"])
