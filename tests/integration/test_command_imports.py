"""Read-only commands stay light: `status`, `plan` and `report` never import the emulator, moto or boto3's
service models (the emulator's import alone is most of a local run's fixed cost; docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from chunking.db import PROJECT_ROOT

PROBE = """
import json, sys
from chunking import cli
try:
    cli.main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m in sys.modules if m == "chunking.emulator" or m.split(".")[0] in ("moto", "boto3"))
print(json.dumps(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["status"], ["plan", "--start", "2026-10-01", "--end", "2026-10-02"],
                                  ["report", "--help"]], ids=["status", "plan", "report"])
def test_read_only_commands_do_not_import_the_emulator(database_url, argv):
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env={**os.environ, "DATABASE_URL": database_url}, timeout=120)
    heavy = json.loads(proc.stderr.strip().splitlines()[-1])
    assert heavy == [], f"{' '.join(argv)} imported {heavy}"
