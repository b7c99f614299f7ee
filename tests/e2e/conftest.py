"""End-to-end fixtures: the CLI in-process, its local state in a temporary folder."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from chunking import cli


@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.out.strip().splitlines()[-1])


@pytest.fixture
def etl(database_url, tmp_path, monkeypatch, capsys):
    """Run ``etl-pipeline ARGS`` against the test database; returns exit code, stdout, stderr."""
    monkeypatch.setenv("ETL_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("ETL_FAULT_CHUNKS", raising=False)

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = cli.main([*args, "--database-url", database_url])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
