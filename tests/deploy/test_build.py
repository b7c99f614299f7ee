"""`sam build` output: each function ships exactly the code (its handler, chunking/, sql/), no tests and no
caches; the layer ships arm64 / CPython 3.13 builds of the third-party packages, and not boto3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.deploy import sam

ELF_MACHINE_AARCH64 = 183


def test_each_function_artifact_is_exactly_the_shared_code(built: Path, template: dict[str, Any]) -> None:
    expected = sam.source_code_files()
    assert "sql/schema/001_initial.sql" in expected and "chunking/db.py" in expected
    for name, props in sam.functions(template).items():
        files = sam.tree_files(built / name)
        assert sorted(set(files) - set(expected)) == [], f"{name}: unexpected files"
        assert sorted(set(expected) - set(files)) == [], f"{name}: missing files"
        changed = [path for path in expected if files[path] != expected[path]]
        assert changed == [], f"{name}: stale files"
        module = props["Handler"].rpartition(".")[0].replace(".", "/") + ".py"
        assert module in files, f"{name}: no {module}"
        assert not any(path.startswith("tests/") or "__pycache__" in path for path in files), name


def test_built_template_points_each_function_at_its_own_artifact(built: Path, template: dict[str, Any]) -> None:
    built_template = sam.load_template(built / "template.yaml")
    for name in sam.functions(template):
        assert built_template["Resources"][name]["Properties"]["CodeUri"] == name
    layer = built_template["Resources"][sam.LAYER_ID]["Properties"]
    assert layer["ContentUri"] == sam.LAYER_ID


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    return int.from_bytes(header[18:20], "little")


def test_layer_holds_arm64_cpython313_dependencies_and_no_boto3(built: Path) -> None:
    python = built / sam.LAYER_ID / "python"
    for package in ("psycopg2", "aws_lambda_powertools", "pydantic", "pydantic_core"):
        assert (python / package / "__init__.py").is_file(), package
    for runtime_provided in ("boto3", "botocore"):
        assert not (python / runtime_provided).exists(), f"{runtime_provided} is in the Lambda runtime already"
    libraries = sorted(python.rglob("*.so*"))
    extensions = [p for p in libraries if p.name.endswith(".so") and ".cpython-" in p.name]
    assert {p.parent.name for p in extensions} >= {"psycopg2", "pydantic_core"}
    for extension in extensions:
        assert extension.name.endswith(".cpython-313-aarch64-linux-gnu.so"), extension.name
    for library in libraries:
        assert _elf_machine(library) == ELF_MACHINE_AARCH64, library.name
    assert not list(python.rglob("__pycache__")) and not (python / "bin").exists()
