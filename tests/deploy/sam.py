"""What the deploy tests share: the SAM template as data, the events folder, `sam build`, and a stand-in for
`sam local invoke` that imports a handler from the build output instead of running it in Docker."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from chunking.db import PROJECT_ROOT

TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
ASL_PATH = PROJECT_ROOT / "statemachine" / "conflict_map.asl.json"
EVENTS_DIR = PROJECT_ROOT / "events"
ENV_JSON = EVENTS_DIR / "env.json"
SAMCONFIG = PROJECT_ROOT / "samconfig.toml"
DEFAULT_BUILD_DIR = PROJECT_ROOT / ".aws-sam" / "build"
SAM = Path(sys.executable).parent / "sam"

# What every function's artifact must hold, and nothing else.
CODE_DIRS = ("handlers", "chunking", "sql")
LAYER_ID = "DependenciesLayer"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


# --- the template --------------------------------------------------------------------------------------------

class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short intrinsics (!Ref, !GetAtt, !Sub, ...) as their long form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    tag = node.tag[1:]
    name = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # a SafeLoader subclass: no arbitrary objects


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id -> properties of every AWS::Serverless::Function, Globals applied (shallowly, as SAM
    does for scalars; Environment variables merged)."""
    defaults = template.get("Globals", {}).get("Function", {})
    out = {}
    for name, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        props = {**defaults, **resource["Properties"]}
        variables = {**defaults.get("Environment", {}).get("Variables", {}),
                     **resource["Properties"].get("Environment", {}).get("Variables", {})}
        props["Environment"] = {"Variables": variables}
        out[name] = props
    return out


def parameter_defaults(template: dict[str, Any]) -> dict[str, Any]:
    return {name: p["Default"] for name, p in template["Parameters"].items() if "Default" in p}


def resolve(value: Any, parameters: dict[str, Any]) -> str | None:
    """A template value as `sam local` sees it: literals and parameter references resolve; references to
    resources (queue URLs, table names) do not, and must come from env.json."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
        return str(parameters[value["Ref"]])
    return None


def asl_placeholders(text: str | None = None) -> set[str]:
    return set(PLACEHOLDER.findall(ASL_PATH.read_text() if text is None else text))


REQUIRED_PARAMETERS = {
    "DbSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:conflict-map/dev/db-AbCdEf",
    "SubnetIds": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"],
    "SecurityGroupIds": ["sg-0aaaaaaaaaaaaaaa1"],
}


def translate(template: dict[str, Any], parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """What CloudFormation does with the SAM transform (aws-sam-translator), after `sam package` has put the
    code and the definition in S3. Offline: the AWS managed policies it names come from the translator's
    bundled list, and a lookup beyond it fails the test."""
    import copy

    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    packaged = copy.deepcopy(template)
    packaged["Globals"]["Function"]["CodeUri"] = "s3://artifacts/conflict-map/code.zip"
    for resource in resources_of_type(packaged, "AWS::Serverless::LayerVersion").values():
        resource["Properties"]["ContentUri"] = "s3://artifacts/conflict-map/layer.zip"
    for resource in resources_of_type(packaged, "AWS::Serverless::StateMachine").values():
        resource["Properties"]["DefinitionUri"] = {"Bucket": "artifacts", "Key": "conflict-map/asl.json"}

    def no_policy_lookup() -> dict[str, str]:
        raise AssertionError("the translator asked IAM for a managed policy")

    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name="us-east-1"))
    return translator.translate(packaged, {**REQUIRED_PARAMETERS, **(parameters or {})},
                                get_managed_policy_map=no_policy_lookup)


# --- events --------------------------------------------------------------------------------------------------

def event_name(handler: str) -> str:
    """The events/ file of a handler: ``handlers.plan_chunks.lambda_handler`` -> ``plan_chunks.json``."""
    return handler.split(".")[-2] + ".json"


def load_event(name: str) -> Any:
    """One helper for the events folder (the same files `sam local invoke -e` reads)."""
    return json.loads((EVENTS_DIR / name).read_text())


def env_json() -> dict[str, dict[str, str]]:
    return json.loads(ENV_JSON.read_text())  # type: ignore[no-any-return]


def local_invoke_env(template: dict[str, Any], logical_id: str) -> dict[str, str]:
    """The environment `sam local invoke <logical_id> --env-vars events/env.json` gives the function: every
    variable the template declares, env.json's value where it has one, else the template's resolved value.
    Raises when a variable is left without a value (a reference to a resource env.json does not cover)."""
    declared = functions(template)[logical_id]["Environment"]["Variables"]
    overrides = env_json().get(logical_id, {})
    parameters = parameter_defaults(template)
    env: dict[str, str] = {}
    unresolved = []
    for name, value in declared.items():
        if name in overrides:
            env[name] = str(overrides[name])
        elif (resolved := resolve(value, parameters)) is not None:
            env[name] = resolved
        else:
            unresolved.append(name)
    if unresolved:
        raise AssertionError(f"{logical_id}: env.json gives no value for {', '.join(sorted(unresolved))}")
    return env


def timeout_of(template: dict[str, Any], logical_id: str) -> int:
    value = resolve(functions(template)[logical_id]["Timeout"], parameter_defaults(template))
    assert value is not None
    return int(value)


# --- sam build -----------------------------------------------------------------------------------------------

def source_code_files(root: Path = PROJECT_ROOT) -> dict[str, bytes]:
    """What every function artifact must contain: the code folders, without caches."""
    files = {}
    for top in CODE_DIRS:
        for path in sorted((root / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def tree_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def build_is_current(build_dir: Path, logical_ids: list[str]) -> bool:
    """True when the build is newer than the template and the Makefile, every function artifact holds
    exactly today's code, and the layer was built."""
    built_template = build_dir / "template.yaml"
    if not built_template.is_file() or not (build_dir / LAYER_ID / "python").is_dir():
        return False
    recipe = max(TEMPLATE_PATH.stat().st_mtime, (PROJECT_ROOT / "Makefile").stat().st_mtime)
    if built_template.stat().st_mtime < recipe:
        return False
    expected = source_code_files()
    return all((build_dir / name).is_dir() and tree_files(build_dir / name) == expected for name in logical_ids)


def sam_build(build_dir: Path) -> subprocess.CompletedProcess[str]:
    """`sam build` into ``build_dir`` (the Makefile build method; the layer's wheels come from PyPI)."""
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    return subprocess.run([str(SAM), "build", "--build-dir", str(build_dir)], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


# --- sam local invoke, without Docker ------------------------------------------------------------------------

def _ours(module: str) -> bool:
    return any(module == top or module.startswith(top + ".") for top in ("chunking", "handlers"))


@contextlib.contextmanager
def code_from(directory: Path) -> Iterator[None]:
    """Import ``chunking`` and ``handlers`` from ``directory`` (a function's build output) instead of the
    source tree, as Lambda would from /var/task. Third-party packages still come from this venv: the
    built layer holds arm64 / CPython 3.13 wheels that cannot load here. No bytecode is written into the
    build output. The source tree's modules are put back afterwards."""
    saved = {name: module for name, module in sys.modules.items() if _ours(name)}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(directory))
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.dont_write_bytecode = dont_write
        sys.path.remove(str(directory))
        for name in [name for name in sys.modules if _ours(name)]:
            del sys.modules[name]
        sys.modules.update(saved)


def load_handler(handler: str) -> Callable[..., Any]:
    """Resolve a template Handler the way the Lambda Python runtime does (``module/path.function``)."""
    module, _, function = handler.rpartition(".")
    return getattr(importlib.import_module(module.replace("/", ".")), function)  # type: ignore[no-any-return]


@dataclasses.dataclass
class LambdaContext:
    """The context `sam local invoke` hands a handler."""

    function_name: str
    timeout_s: int
    memory_limit_in_mb: int = 512
    aws_request_id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "$LATEST"
        self.function_version = "$LATEST"
        self._deadline = time.monotonic() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
