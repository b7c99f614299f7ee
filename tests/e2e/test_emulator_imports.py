"""The emulator's fixed cost stays light: moto's Step Functions interpreter is imported without AWS Batch's models and
EC2's (0.7 to 1.0 s of a local run's start, for an integration the state machine never uses), and the Batch
backend still loads when asked for; the interpreter builds one client per service for a run, not one per call
(docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date

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


def test_the_interpreter_builds_one_client_per_service_for_a_whole_run(conn, etl, monkeypatch):
    # given moto's interpreter's client factory, counted (it built one boto3 client for every Lambda task and every
    # SQS message of the Map: ~45 ms of CPU each)
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_sqs
    from moto.stepfunctions.parser.asl.utils import boto_client

    from chunking import seed

    built = []
    original = boto_client.boto_client_for

    def counted(region, service, state_credentials=None):
        built.append(service)
        return original(region, service, state_credentials)

    for module in (boto_client, lambda_eval_utils, state_task_service_sqs):
        monkeypatch.setattr(module, "boto_client_for", counted)
    # when a local run goes through its five Lambda steps and a Map of several chunks
    seed.seed_visits(conn, visits=600, start=date(2026, 10, 1), days=6, seed=3)
    result = etl("run", "--local", "--start", "2026-10-01", "--end", "2026-10-06", "--chunk-days", "1", "--json")
    # then it succeeded, and the interpreter built one client for Lambda and one for SQS
    assert result.code == 0, result.err
    assert result.json["chunks"] == 6
    assert sorted(built) == ["lambda", "sqs"]
