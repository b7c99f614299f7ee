"""Commands that find what the ledger knows (real PostgreSQL): redrive and abandon go where the run ran, status
filters by state and time, logs reads a local run's files or CloudWatch Logs (moto), every command has --json,
and a failed or dead run's view ends with the command that continues it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import date
from typing import Any

import boto3
import pytest

from chunking import cli, ledger
from chunking.planner import Chunk
from tests.e2e.conftest import Result

WINDOW = (date(2026, 10, 1), date(2026, 10, 4))




@pytest.fixture
def etl(database_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ETL_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str, url: str | None = database_url) -> Result:
        capsys.readouterr()
        code = cli.main([*args, *(["--database-url", url] if url else [])])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _run(conn, name: str, *, executor: str, status: str = "FAILED", created: str | None = None,
         chunks: int = 2) -> dict[str, Any]:
    run = ledger.begin_run(conn, execution_name=name, trigger="cli", executor=executor, window_start=WINDOW[0],
                           window_end=WINDOW[1], chunk_days=2, max_chunk_rows=1000, max_concurrency=1)
    rid = run["run_id"]
    ledger.insert_chunks(conn, rid, [Chunk(i + 1, date(2026, 10, 1 + 2 * i), date(2026, 10, 2 + 2 * i), 10)
                                     for i in range(chunks)])
    with conn.cursor() as cur:
        if status != "RUNNING":
            cur.execute("UPDATE etl.chunks SET status = 'SUCCEEDED', attempts = 1, duration_ms = 35, "
                        "finished_at = now() WHERE run_id = %s AND chunk_id = 1", (rid,))
            cur.execute("UPDATE etl.chunks SET status = 'FAILED', attempts = 3, finished_at = now(), last_error = "
                        "%s WHERE run_id = %s AND chunk_id > 1", ("boom: " + "the whole story " * 12 + "END", rid))
            cur.execute("UPDATE etl.runs SET status = %s, finished_at = now(), error = 'chunks failed' "
                        "WHERE run_id = %s", (status, rid))
        else:
            cur.execute("UPDATE etl.runs SET heartbeat_at = now() - interval '1 hour' WHERE run_id = %s", (rid,))
        if created:
            cur.execute("UPDATE etl.runs SET created_at = %s WHERE run_id = %s", (created, rid))
    conn.commit()
    return ledger.get_run(conn, rid) | {"run_id": rid}


def _local(pid: int | None = None) -> str:
    return f"local:{socket.gethostname()}:{pid or _dead_pid()}"


# --- redrive and abandon go where the run ran ----------------------------------------------------------------

def test_redrive_dry_run_of_a_local_run_needs_no_local_flag(conn, etl):
    run = _run(conn, "cli-local-failed", executor=_local())
    result = etl("redrive", "--run-id", str(run["run_id"]), "--dry-run", "--json")
    assert result.code == 0, result.err
    assert result.json["where"] == "local"
    assert [(c["chunk_id"], c["status"], c["in_dead_letter_queue"]) for c in result.json["would_redrive"]] == \
        [(2, "FAILED", False)]


def test_redrive_dry_run_of_a_run_in_aws_reads_the_deployed_queue_without_being_told(conn, etl, aws, monkeypatch):
    sqs = boto3.client("sqs")
    dlq = sqs.create_queue(QueueName="chunk-dlq")["QueueUrl"]
    monkeypatch.setenv("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:conflict-map")
    monkeypatch.setenv("CHUNK_DLQ_URL", dlq)
    run = _run(conn, "scheduled-2026-10-05", executor="scheduled-2026-10-05")
    sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"run_id": run["run_id"], "chunk_id": 2}))
    result = etl("redrive", "--run-id", str(run["run_id"]), "--dry-run", "--json")
    assert result.code == 0, result.err
    assert result.json["where"] == "aws"
    assert [(c["chunk_id"], c["in_dead_letter_queue"]) for c in result.json["would_redrive"]] == [(2, True)]


def test_redrive_of_a_run_in_aws_without_the_deployed_database_is_refused(conn, etl, database_url, monkeypatch):
    # given no DATABASE_URL: the ledger read is the embedded one (here: the test database standing in for it)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr("chunking.db.embedded_database_url", lambda *a: database_url)
    run = _run(conn, "scheduled-2026-10-06", executor="scheduled-2026-10-06")
    result = etl("redrive", "--run-id", str(run["run_id"]), url=None)
    assert result.code == 2 and "follows the run in the deployed database's ledger" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_abandon_of_a_local_run_checks_its_process_without_being_told(conn, etl):
    pid = _dead_pid()
    run = _run(conn, "cli-local-dead", executor=_local(pid), status="RUNNING")
    result = etl("abandon", "--run-id", str(run["run_id"]), "--json")
    assert result.code == 0, result.err
    assert f"its process {pid} is gone" in result.json["reason"] and result.json["status"] == "ABANDONED"
    assert result.json["next"] == [f"etl-pipeline run --local --start {WINDOW[0]} --end {WINDOW[1]}"]
    assert ledger.get_run(conn, run["run_id"])["status"] == "ABANDONED"


def test_abandon_of_a_live_local_run_is_refused(conn, etl):
    run = _run(conn, "cli-local-alive", executor=_local(os.getpid()), status="RUNNING")
    result = etl("abandon", "--run-id", str(run["run_id"]), "--stale-after", "0")
    assert result.code == 2 and f"its process {os.getpid()} is running" in result.err


# --- status ----------------------------------------------------------------------------------------------------

def test_status_filters_by_state_and_start_time_in_sql(conn, etl):
    old_failed = _run(conn, "old-failed", executor=_local(), created="2026-10-15 12:00+00")
    new_failed = _run(conn, "new-failed", executor=_local(), created="2026-11-02 08:00+00")
    _run(conn, "new-ok", executor=_local(), status="SUCCEEDED", created="2026-11-03 08:00+00")
    ids = [r["run_id"] for r in etl("status", "--state", "failed", "--since", "2026-11-01", "--json").json]
    assert ids == [new_failed["run_id"]]
    ids = [r["run_id"] for r in etl("status", "--state", "FAILED", "--json").json]
    assert ids == [new_failed["run_id"], old_failed["run_id"]]
    assert len(etl("status", "--since", "2026-11-01", "--json").json) == 2
    assert [r["run_id"] for r in etl("status", "--limit", "1", "--json").json] == \
        [max(r["run_id"] for r in ledger.list_runs(conn))]
    assert "no runs match" in etl("status", "--state", "ABANDONED").out


def test_status_of_a_failed_run_shows_every_error_in_full_and_how_to_continue(conn, etl, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    run = _run(conn, "cli-failed-view", executor=_local())
    out = etl("status", "--run-id", str(run["run_id"])).out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "the whole story " * 3 in out and "END" in out  # cut in the table, whole below it
    assert "UTC" in out  # times with their zone
    assert f"continue: `etl-pipeline redrive --run-id {run['run_id']}`" in out
    monkeypatch.setenv("COLUMNS", "200")
    wide = etl("status", "--run-id", str(run["run_id"])).out
    assert " 35 ms " in wide and "0.0s" not in wide  # a 35 ms chunk, in the one duration format


# --- logs --------------------------------------------------------------------------------------------------------

def _lines(name: str, run_id: int, n: int) -> list[dict[str, Any]]:
    return [{"level": "INFO", "message": f"line {i}", "timestamp": f"2026-10-07 12:00:{i % 60:02d},000+0000",
             "function_name": "ChunkWorkerFunction", "correlation_id": name, "run_id": run_id,
             "chunk_id": 1 + i % 2} for i in range(n)]


def test_logs_of_a_local_run_come_from_its_files_by_execution_name(conn, etl, tmp_path):
    run = _run(conn, "cli-logs-local", executor=_local())
    logs_dir = tmp_path / "runs" / "logs"
    logs_dir.mkdir(parents=True)
    first = _lines(run["execution_name"], run["run_id"], 4)
    redrive = _lines(f"redrive-{run['run_id']}-1-x", run["run_id"], 2)
    (logs_dir / f"{run['execution_name']}.jsonl").write_text(
        "\n".join(json.dumps(line) for line in first) + "\n" + '{"_aws": {"CloudWatchMetrics": []}}\n')
    (logs_dir / f"redrive-{run['run_id']}-1-x.jsonl").write_text("\n".join(json.dumps(r) for r in redrive) + "\n")
    (logs_dir / "cli-some-other-run.jsonl").write_text(json.dumps(_lines("other", 999, 1)[0]) + "\n")
    every = etl("logs", "--run-id", str(run["run_id"]), "--json")
    assert every.code == 0, every.err
    assert [json.loads(line) for line in every.out.splitlines()] == first + redrive  # no metrics, no other run
    chunk = etl("logs", "--run-id", str(run["run_id"]), "--chunk", "2")
    assert [line.split(": ", 1)[1] for line in chunk.out.splitlines()] == ["line 1", "line 3", "line 1"]
    assert all("ChunkWorkerFunction chunk 2" in line for line in chunk.out.splitlines())


def test_logs_of_a_run_in_aws_come_from_cloudwatch_by_correlation_id(conn, etl, aws):
    logs_client = boto3.client("logs")
    template = {"Resources": {
        "ChunkWorkerLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/aws/lambda/w"}},
        "StageVisitsLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/aws/lambda/s"}},
        "StateMachineLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/aws/states/m"}}}}
    boto3.client("cloudformation").create_stack(StackName="conflict-map", TemplateBody=json.dumps(template))
    run = _run(conn, "scheduled-2026-10-07", executor="scheduled-2026-10-07")
    mine = _lines(run["execution_name"], run["run_id"], 4)
    now_ms = int(time.time() * 1000)
    for group, records in (("/aws/lambda/w", mine[1:] + _lines("scheduled-2026-10-08", 77, 2)),
                           ("/aws/lambda/s", mine[:1])):
        logs_client.create_log_stream(logGroupName=group, logStreamName="2026/10/07/[$LATEST]abc")
        events = [{"timestamp": now_ms + 1000 * int(r["message"].split()[1]), "message": json.dumps(r)}
                  for r in records]
        events.append({"timestamp": now_ms, "message": "START RequestId: 1 Version: $LATEST"})
        logs_client.put_log_events(logGroupName=group, logStreamName="2026/10/07/[$LATEST]abc",
                                   logEvents=sorted(events, key=lambda e: e["timestamp"]))
    shown = etl("logs", "--run-id", str(run["run_id"]), "--stack-name", "conflict-map", "--json")
    assert shown.code == 0, shown.err
    got = [json.loads(line) for line in shown.out.splitlines()]
    assert [g["message"] for g in got] == ["line 0", "line 1", "line 2", "line 3"]
    assert {g["log_group"] for g in got} == {"/aws/lambda/w", "/aws/lambda/s"}
    one = etl("logs", "--run-id", str(run["run_id"]), "--stack-name", "conflict-map", "--chunk", "1", "--json")
    assert [json.loads(line)["message"] for line in one.out.splitlines()] == ["line 0", "line 2"]
    refused = etl("logs", "--run-id", str(run["run_id"]))
    assert refused.code == 2 and "pass --stack-name or set ETL_STACK_NAME" in refused.err


# --- every command speaks JSON -------------------------------------------------------------------------------------

def test_db_init_seed_and_report_print_json(conn, etl, tmp_path):
    assert etl("db", "init", "--json").json == {"schema_version": etl("db", "init", "--json").json["schema_version"],
                                                "applied": []}
    seeded = etl("seed", "--visits", "50", "--start", "2026-10-01", "--days", "2", "--replace", "--json").json
    assert (seeded["visits"], seeded["start"], seeded["end"], seeded["seed"]) == (50, "2026-10-01", "2026-10-02", 7)
    run = _run(conn, "cli-report-json", executor=_local())
    page = tmp_path / "r.html"
    written = etl("report", "--run-id", str(run["run_id"]), "--out", str(page), "--json")
    assert written.code == 0, written.err
    assert written.json == {"run_id": run["run_id"], "report": str(page)} and page.stat().st_size > 0
