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


def test_a_second_local_run_in_one_process_parses_no_definition_and_loads_no_service_model(conn, etl, monkeypatch):
    # given moto's ASL parser and botocore's JSON loader, counted (each emulator session parsed the definition twice,
    # at its creation and at the execution's start, and a new default session read every service model again)
    import boto3
    from botocore import loaders
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    from chunking import seed

    parses, loads = [], []
    original_parse, original_load = AmazonStateLanguageParser.parse, loaders.JSONFileLoader.load_file

    def counted_parse(definition):
        parses.append(len(definition))
        return original_parse(definition)

    def counted_load(self, file_path):
        loads.append(file_path)
        return original_load(self, file_path)

    monkeypatch.setattr(AmazonStateLanguageParser, "parse", staticmethod(counted_parse))
    monkeypatch.setattr(loaders.JSONFileLoader, "load_file", counted_load)
    default_before = boto3.DEFAULT_SESSION
    seed.seed_visits(conn, visits=300, start=date(2026, 10, 1), days=3, seed=4)
    window = ("--start", "2026-10-01", "--end", "2026-10-03", "--chunk-days", "1", "--json")
    # when two local runs go through the whole state machine in this process, one after the other
    first = etl("run", "--local", *window)
    parsed_by_first = len(parses)
    loads.clear()
    second = etl("run", "--local", *window)
    # then both succeeded; the first parsed the definition once (its creation; the execution reused it), the second
    # not at all, and the second read no service model file again
    assert first.code == 0 and second.code == 0, first.err + second.err
    assert second.json["chunks"] == 3
    assert parsed_by_first <= 1 and len(parses) == parsed_by_first, parses
    assert [p for p in loads if "service-2" in str(p) or "endpoints" in str(p)] == []
    # and outside the emulator the default session is what it was (moto restores it; no mocked client escapes)
    assert boto3.DEFAULT_SESSION is default_before


def test_a_definition_that_does_not_parse_is_refused_every_time(tmp_path):
    # given the emulator's parse cache, in force
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException

    from chunking import emulator

    with emulator._parsed_definitions_kept():
        for _ in range(2):
            # when the same broken definition is parsed twice, then both fail (a failure is never kept)
            try:
                AmazonStateLanguageParser.parse('{"StartAt": "A", "States": {"A": {"Type": "Nope"}}}')
            except ASLParserException:
                continue
            raise AssertionError("a broken definition parsed")
    assert "Nope" not in "".join(emulator._parsed_definitions)


def test_the_emulators_start_is_out_of_the_collectors_reach_while_it_runs(database_url, tmp_path):
    # given no frozen objects (a test process freezes nothing else)
    import gc

    from chunking.emulator import LocalCloud

    assert gc.get_freeze_count() == 0
    # when an emulator is open, what its start left (moto, botocore's models, the parsed definition) is frozen: a full
    # collection during the run does not traverse it
    with LocalCloud(database_url, state_dir=tmp_path):
        frozen = gc.get_freeze_count()
    # then it was a large heap, and it is back in the collector's reach once the emulator closed
    assert frozen > 100_000, frozen
    assert gc.get_freeze_count() == 0


def test_json_paths_are_parsed_once_while_the_emulator_runs_and_restored_after():
    # given moto's JSONPath parse, as its interpreter calls it
    from moto.stepfunctions.parser.asl.utils import json_path

    from chunking import emulator

    original = vars(json_path)["parse"]
    with emulator._json_paths_parsed_once():
        # when one path is evaluated twice against different data, then it is parsed once and each answer is its own
        first = vars(json_path)["parse"]("$.run.max_concurrency")
        assert vars(json_path)["parse"]("$.run.max_concurrency") is first
        assert json_path.extract_json("$.run.max_concurrency", {"run": {"max_concurrency": 2}}) == 2
        assert json_path.extract_json("$.run.max_concurrency", {"run": {"max_concurrency": 3}}) == 3
    # and afterwards moto's own parse is back
    assert vars(json_path)["parse"] is original
