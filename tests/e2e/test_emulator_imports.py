"""The emulator's start stays light: moto's Step Functions interpreter is imported without AWS Batch's models and
EC2's (0.7 to 1.0 s of a local run's start, for an integration the state machine never uses), and the Batch
backend still loads when asked for (docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys

from chunking.db import PROJECT_ROOT

PROBE = """
import json, sys, tempfile
from pathlib import Path
from chunking.emulator import LocalCloud
with tempfile.TemporaryDirectory() as state:
    with LocalCloud(sys.argv[1], state_dir=Path(state)) as cloud:
        loaded = sorted(m for m in sys.modules if m.split(".")[:2] in (["moto", "ec2"], ["moto", "batch"]))
        interpreter = "moto.stepfunctions.parser.backend.execution" in sys.modules
        from moto.backends import get_backend
        backend = type(get_backend("batch")["123456789012"]["us-east-1"]).__name__
print(json.dumps({"loaded": loaded, "interpreter": interpreter, "backend": backend}))
"""


def test_the_emulator_starts_without_ec2_and_batch_still_loads(database_url):
    proc = subprocess.run([sys.executable, "-c", PROBE, database_url], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["interpreter"], "the probe must have imported moto's Step Functions interpreter"
    assert seen["loaded"] == ["moto.batch", "moto.batch.exceptions", "moto.batch.utils"], seen["loaded"]
    assert seen["backend"] == "BatchBackend"
