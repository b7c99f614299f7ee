"""The state machine passes an independent Amazon States Language validator (npm `asl-validator`, installed
by `make install` from tests/deploy/package-lock.json), as written and with its placeholders filled."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chunking.emulator import fill_placeholders
from tests.deploy import sam

NODE_DIR = Path(__file__).parent
VALIDATOR = NODE_DIR / "node_modules" / "asl-validator" / "dist" / "bin" / "asl-validator.js"


@pytest.fixture(scope="module")
def validator() -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the ASL validator (npm asl-validator) cannot run here")
    if not VALIDATOR.is_file():
        pytest.fail(f"asl-validator is not installed under {NODE_DIR}: run `make install` (npm ci)")
    return [node, str(VALIDATOR)]


def validate(validator: list[str], path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*validator, "--json-path", str(path)], capture_output=True, text=True, timeout=60,
                          check=False)


def filled_definition(template: dict[str, Any]) -> str:
    """The definition as CloudFormation hands it to Step Functions: each placeholder replaced by the kind of
    value its substitution resolves to (a function ARN, the queue URL)."""
    values = {}
    for key in template["Resources"]["ConflictMapStateMachine"]["Properties"]["DefinitionSubstitutions"]:
        if key.endswith("FunctionArn"):
            values[key] = f"arn:aws:lambda:us-east-1:123456789012:function:conflict-map-dev-{key[:-3]}-Ab12Cd34"
        else:
            values[key] = "https://sqs.us-east-1.amazonaws.com/123456789012/conflict-map-dev-chunks"
    return fill_placeholders(sam.ASL_PATH.read_text(), values)


def test_state_machine_definition_is_valid_asl(validator: list[str]) -> None:
    result = validate(validator, sam.ASL_PATH)
    assert result.returncode == 0, result.stdout + result.stderr


def test_filled_definition_is_valid_asl(validator: list[str], template: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "filled.asl.json"
    path.write_text(filled_definition(template))
    assert "${" not in path.read_text()
    result = validate(validator, path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_validator_rejects_a_transition_to_a_missing_state(validator: list[str], tmp_path: Path) -> None:
    """The validator really checks: the same definition with one dangling Next fails."""
    definition = json.loads(sam.ASL_PATH.read_text())
    definition["States"]["StageVisits"]["Next"] = "NoSuchState"
    path = tmp_path / "broken.asl.json"
    path.write_text(json.dumps(definition))
    result = validate(validator, path)
    assert result.returncode != 0
    assert "NoSuchState" in result.stdout + result.stderr
