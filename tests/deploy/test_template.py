"""template.yaml against the code: the state machine's placeholders, the emulator, the settings, the events,
env.json and samconfig.toml must agree, so none of them can drift from the others."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest

from chunking import aws, settings
from chunking.emulator import FUNCTIONS, LocalCloud
from tests.deploy import sam


def test_placeholders_of_asl_are_exactly_the_definition_substitutions(template: dict[str, Any]) -> None:
    machine = template["Resources"]["ConflictMapStateMachine"]["Properties"]
    assert machine["DefinitionUri"] == sam.ASL_PATH.relative_to(sam.TEMPLATE_PATH.parent).as_posix()
    substitutions = set(machine["DefinitionSubstitutions"])
    placeholders = sam.asl_placeholders()
    assert placeholders - substitutions == set(), "placeholders without a substitution"
    assert substitutions - placeholders == set(), "substitutions the definition never uses"


def test_emulator_fills_exactly_the_placeholders_the_template_fills(template: dict[str, Any], tmp_path) -> None:
    machine = template["Resources"]["ConflictMapStateMachine"]["Properties"]
    cloud = LocalCloud("postgresql://unused", state_dir=tmp_path)  # not opened: substitutions() only
    assert set(cloud.substitutions()) == set(machine["DefinitionSubstitutions"])


def test_emulator_functions_are_the_template_functions_with_the_same_handlers(template: dict[str, Any]) -> None:
    declared = {name: props["Handler"] for name, props in sam.functions(template).items()}
    assert declared == FUNCTIONS


def test_substitutions_point_at_the_functions_and_queue_the_placeholders_name(template: dict[str, Any]) -> None:
    substitutions = template["Resources"]["ConflictMapStateMachine"]["Properties"]["DefinitionSubstitutions"]
    for key, value in substitutions.items():
        if key.endswith("FunctionArn"):
            assert value == {"Fn::GetAtt": [key.removesuffix("Arn"), "Arn"]}, key
        else:
            assert (key, value) == ("ChunkQueueUrl", {"Ref": "ChunkQueue"})


def test_every_function_is_python_313_on_arm64_built_by_the_makefile(template: dict[str, Any]) -> None:
    for name, props in sam.functions(template).items():
        assert props["Runtime"] == "python3.13", name
        assert props["Architectures"] == ["arm64"], name
        assert props["Tracing"] == "Active", name
        assert props["CodeUri"] == ".", name
        assert template["Resources"][name]["Metadata"]["BuildMethod"] == "makefile", name
        assert props["Layers"] == [{"Ref": sam.LAYER_ID}], name


def test_function_environment_names_are_settings_the_code_reads(template: dict[str, Any]) -> None:
    known = {v for k, v in vars(settings).items() if k.isupper() and isinstance(v, str)}
    for name, props in sam.functions(template).items():
        for variable in props["Environment"]["Variables"]:
            assert variable in known or variable.startswith("POWERTOOLS_"), f"{name}: unknown {variable}"


def test_worker_and_queue_share_timeout_and_receive_count(template: dict[str, Any]) -> None:
    worker = sam.functions(template)["ChunkWorkerFunction"]
    variables = worker["Environment"]["Variables"]
    queue = template["Resources"]["ChunkQueue"]["Properties"]
    assert variables[settings.WORKER_TIMEOUT_S] == worker["Timeout"] == {"Ref": "WorkerTimeoutSeconds"}
    assert variables[settings.MAX_RECEIVE_COUNT] == queue["RedrivePolicy"]["maxReceiveCount"]
    assert variables[settings.CHUNK_QUEUE_URL] == {"Ref": "ChunkQueue"}
    assert variables[settings.CHUNK_DLQ_URL] == {"Ref": "ChunkDeadLetterQueue"}
    assert variables[settings.IDEMPOTENCY_TABLE] == {"Ref": "IdempotencyTable"}
    validate = sam.functions(template)["ValidateConfigFunction"]["Environment"]["Variables"]
    assert validate[settings.CHUNK_QUEUE_URL] == {"Ref": "ChunkQueue"}
    # ValidateConfig computes the Map items' wait from these: it must see the worker's values.
    for variable in (settings.WORKER_TIMEOUT_S, settings.MAX_RECEIVE_COUNT, settings.RETRY_MAX_MS):
        assert validate[variable] == variables[variable], variable


def test_outputs_are_the_ones_the_cli_reads(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs[aws.OUTPUT_STATE_MACHINE_ARN]["Value"] == {"Ref": "ConflictMapStateMachine"}
    assert outputs[aws.OUTPUT_CHUNK_QUEUE_URL]["Value"] == {"Ref": "ChunkQueue"}
    assert outputs[aws.OUTPUT_CHUNK_DLQ_URL]["Value"] == {"Ref": "ChunkDeadLetterQueue"}
    assert outputs["IdempotencyTableName"]["Value"] == {"Ref": "IdempotencyTable"}


def test_idempotency_table_matches_the_powertools_persistence_layer(template: dict[str, Any], aws: None) -> None:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    table = template["Resources"]["IdempotencyTable"]["Properties"]
    layer = DynamoDBPersistenceLayer(table_name="unused")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": layer.key_attr, "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": layer.key_attr, "AttributeType": "S"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": layer.expiry_attr, "Enabled": True}


# --- events/ and env.json ------------------------------------------------------------------------------------

def test_every_function_has_an_event_file(template: dict[str, Any]) -> None:
    for name, props in sam.functions(template).items():
        assert (sam.EVENTS_DIR / sam.event_name(props["Handler"])).is_file(), name


def test_env_json_names_each_function_and_only_variables_its_template_declares(template: dict[str, Any]) -> None:
    declared = {name: set(props["Environment"]["Variables"]) for name, props in sam.functions(template).items()}
    given = sam.env_json()
    assert set(given) == set(declared)
    for name, variables in given.items():
        # sam local invoke silently ignores a variable the template does not declare.
        assert set(variables) <= declared[name], f"{name}: {sorted(set(variables) - declared[name])}"


def test_env_json_leaves_no_variable_of_a_local_invoke_without_a_value(template: dict[str, Any]) -> None:
    for name in sam.functions(template):
        env = sam.local_invoke_env(template, name)
        assert env["DB_SECRET_ARN"] == "" and env["DATABASE_URL"].startswith("postgresql://"), name


def test_worker_event_is_an_sqs_batch_carrying_a_chunk_message() -> None:
    from chunking.messages import ChunkMessage

    event = sam.load_event("chunk_worker.json")
    queue_url = sam.env_json()["ChunkWorkerFunction"]["CHUNK_QUEUE_URL"]
    for record in event["Records"]:
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"].rsplit(":", 1)[-1] == queue_url.rsplit("/", 1)[-1]
        assert {"messageId", "receiptHandle", "body", "attributes", "md5OfBody", "awsRegion"} <= set(record)
        message = ChunkMessage.parse_body(record["body"])
        assert message.task_token


# --- samconfig.toml ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def samconfig() -> dict[str, Any]:
    return tomllib.loads(sam.SAMCONFIG.read_text())


def _overrides(deploy: dict[str, Any]) -> dict[str, str]:
    raw = deploy.get("parameter_overrides", [])
    items = raw if isinstance(raw, list) else re.findall(r'(\w+=(?:"[^"]*"|\S+))', raw)
    return dict(item.split("=", 1) for item in items)


def test_samconfig_has_default_dev_and_prod_with_their_own_stacks(samconfig: dict[str, Any]) -> None:
    assert {"default", "dev", "prod"} <= set(samconfig)
    names = {env: samconfig[env]["global"]["parameters"]["stack_name"] for env in ("default", "dev", "prod")}
    assert len(set(names.values())) == 3, names
    for env in ("default", "dev", "prod"):
        deploy = samconfig[env]["deploy"]["parameters"]
        assert deploy["resolve_s3"] is True, env
        assert "CAPABILITY_IAM" in deploy["capabilities"], env
        assert samconfig[env]["build"]["parameters"]["build_in_source"] is True, env
    assert samconfig["prod"]["deploy"]["parameters"]["confirm_changeset"] is True


def test_samconfig_overrides_name_real_parameters_and_every_required_one(samconfig: dict[str, Any],
                                                                         template: dict[str, Any]) -> None:
    required = {name for name, p in template["Parameters"].items() if "Default" not in p}
    for env in ("dev", "prod"):
        overrides = _overrides(samconfig[env]["deploy"]["parameters"])
        assert set(overrides) <= set(template["Parameters"]), env
        assert required <= set(overrides), env
        for name, value in overrides.items():
            allowed = template["Parameters"][name].get("AllowedValues")
            assert allowed is None or value in map(str, allowed), f"{env}: {name}={value}"


def test_samconfig_holds_no_password(samconfig: dict[str, Any]) -> None:
    def strings(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    values = strings(samconfig)
    assert values, "samconfig.toml has no values at all"
    for value in values:
        assert "password" not in value.lower(), value
        assert not re.search(r"://[^/\s@]*:[^/\s@]*@", value), value  # credentials in a URL
