"""Fixtures of the deploy tests: the template, a current `sam build`, and a mocked AWS account."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import sam

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return sam.load_template()


@pytest.fixture(scope="session")
def function_ids(template: dict[str, Any]) -> list[str]:
    return sorted(sam.functions(template))


@pytest.fixture(scope="session")
def built(function_ids: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `sam build` output: `.aws-sam/build` when it holds today's code (as after `make lint`), else a
    fresh build in a temporary folder."""
    if sam.build_is_current(sam.DEFAULT_BUILD_DIR, function_ids):
        return sam.DEFAULT_BUILD_DIR
    if not sam.SAM.exists():
        pytest.fail(f"sam is not installed at {sam.SAM}: run `make install`")
    build_dir = tmp_path_factory.mktemp("sam") / "build"
    result = sam.sam_build(build_dir)
    if result.returncode != 0:
        pytest.fail(f"sam build failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return build_dir


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A mocked AWS account (moto), with throwaway credentials and no endpoint or profile of the user's."""
    from moto import mock_aws

    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield
