"""Failure drills end to end: the real state-machine definition in the local emulator, the CLI, a real
PostgreSQL. A failed run names its chunks, its messages are in the (emulated) dead-letter queue, and one
`redrive` finishes it with the same table a clean run gives, nothing applied twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date

import boto3
import pytest

from chunking import ledger, seed
from chunking.emulator import LocalCloud, LocalOptions
from tests import oracle

pytestmark = pytest.mark.e2e

START, END = "2026-10-01", "2026-10-06"
TWO_DAY_CHUNKS = ("--chunk-days", "2", "--max-chunk-rows", "1000000")  # fixed sizing: exact 2-day chunks
FAST = {"ETL_MAX_RECEIVE_COUNT": "3", "ETL_RETRY_BASE_MS": "50", "ETL_RETRY_MAX_MS": "100"}


@pytest.fixture
def population(conn):
    seed.seed_visits(conn, visits=2_400, start=date(2026, 10, 1), days=7, seed=31)
    want, _ = oracle.expected(oracle.load_visits(conn), date(2026, 10, 1), date(2026, 10, 6))
    return want


def _chunks(conn, run_id):
    rows = ledger.list_chunks(conn, run_id)
    conn.rollback()
    return {str(c["chunk_start"]): c for c in rows}


def _attempt_outcomes(conn, run_id, chunk_id):
    return [a["outcome"] for a in ledger.list_attempts(conn, run_id) if a["chunk_id"] == chunk_id]


def test_fault_drill_fails_the_run_then_redrive_finishes_it_with_a_clean_table(conn, etl, population, monkeypatch):
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    # given a drill that fails every attempt of the chunk starting Oct 3
    monkeypatch.setenv("ETL_FAULT_CHUNKS", "2026-10-03")
    failed = etl("run", "--local", "--start", START, "--end", END, *TWO_DAY_CHUNKS, "--json")
    # then the run ends FAILED (non-zero exit) after the configured attempts, naming the chunk
    assert failed.code == 1
    summary = failed.json
    assert summary["status"] == "FAILED"
    assert [(c["chunk_start"], c["attempts"]) for c in summary["failed_chunks"]] == [("2026-10-03", 3)]
    assert "2026-10-03..2026-10-04" in summary["error"] and "fault drill" in summary["error"]
    run_id = summary["run_id"]
    # and its message is in the emulated dead-letter queue, as the dry run shows (changing nothing)
    dry = etl("redrive", "--run-id", str(run_id), "--local", "--dry-run", "--json")
    assert dry.code == 0
    plan = dry.json["would_redrive"]
    assert [(c["chunk_start"], c["attempts"], c["in_dead_letter_queue"]) for c in plan] == [("2026-10-03", 3, True)]
    assert "fault drill" in plan[0]["last_error"]
    assert ledger.get_run(conn, run_id)["status"] == "FAILED"
    conn.rollback()

    # when the fault is gone and the run is redriven
    monkeypatch.delenv("ETL_FAULT_CHUNKS")
    redriven = etl("redrive", "--run-id", str(run_id), "--local", "--json")
    # then the same run finishes SUCCEEDED, its DLQ message removed
    assert redriven.code == 0, redriven.err
    assert (redriven.json["run_id"], redriven.json["status"], redriven.json["dead_letters_removed"]) == \
        (run_id, "SUCCEEDED", 1)
    chunks = _chunks(conn, run_id)
    # the failed chunk was applied once, on its fourth attempt; the others once, on their first
    assert _attempt_outcomes(conn, run_id, chunks["2026-10-03"]["chunk_id"]) == ["FAILED"] * 3 + ["SUCCEEDED"]
    assert all(c["attempts"] == 1 for start, c in chunks.items() if start != "2026-10-03")
    # the counts add up to exactly the conflicts of a clean run: nothing lost, nothing doubled
    run = ledger.get_run(conn, run_id)
    conn.rollback()
    assert run["inserted"] == sum(c["inserted"] for c in chunks.values()) == len(population)
    assert oracle.actual(conn, date(2026, 10, 1), date(2026, 10, 6)) == population
    assert etl("redrive", "--run-id", str(run_id), "--local", "--dry-run").code == 2  # nothing left to redrive
    # a rerun over the window finds everything unchanged
    again = etl("run", "--local", "--start", START, "--end", END, "--json")
    assert (again.json["inserted"], again.json["unchanged"]) == (0, len(population))


def test_poison_chunk_fails_at_once_without_retries_and_lands_in_the_dlq(conn, etl, population, monkeypatch):
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    # given an error in the statement itself for one chunk's dates (a constraint its insert breaks)
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE conflict.conflict_visit_maps "
                    "ADD CONSTRAINT drill CHECK (conflict_date <> '2026-10-05')")
    conn.commit()
    try:
        failed = etl("run", "--local", "--start", START, "--end", END, *TWO_DAY_CHUNKS, "--json")
    finally:
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE conflict.conflict_visit_maps DROP CONSTRAINT drill")
        conn.commit()
    # then the chunk failed on its first attempt (a permanent error burns no retries) and the run names it
    assert failed.code == 1
    assert [(c["chunk_start"], c["attempts"]) for c in failed.json["failed_chunks"]] == [("2026-10-05", 1)]
    assert "CheckViolation" in failed.json["error"]
    dry = etl("redrive", "--run-id", str(failed.json["run_id"]), "--local", "--dry-run", "--json")
    assert dry.json["would_redrive"][0]["in_dead_letter_queue"] is True
    # and once the cause is fixed, a redrive finishes it
    assert etl("redrive", "--run-id", str(failed.json["run_id"]), "--local").code == 0
    assert oracle.actual(conn, date(2026, 10, 1), date(2026, 10, 6)) == population


def _purge_while(sqs, queue_url, running, lost):
    """Lose every message sent to the queue (a purge, an expired DLQ) while ``running()``; count them."""
    while running():
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            lost.append(time.monotonic())
        time.sleep(0.05)


def test_a_lost_message_is_sent_again_when_its_map_item_times_out(conn, population, database_url, tmp_path,
                                                                  monkeypatch):
    # given an execution whose first chunk message is lost before any worker sees it
    monkeypatch.setenv("ETL_CHUNK_TIMEOUT_S", "2")
    with LocalCloud(database_url, options=LocalOptions(max_concurrency=1), state_dir=tmp_path,
                    env={"ETL_CHUNK_TIMEOUT_S": "2"}) as cloud:
        arn = cloud.start_execution("lost-once", {"start_date": START, "end_date": END, "chunk_days": 6,
                                                  "max_concurrency": 1})
        sqs = boto3.client("sqs", region_name="us-east-1")
        lost: list[float] = []
        _purge_while(sqs, cloud.queue_url, lambda: not lost, lost)
        cloud.start_workers()
        described = cloud.wait(arn)
    # then the Map item times out, is retried like any transient failure (the chunk is sent again), and the run
    # succeeds by itself
    assert described["status"] == "SUCCEEDED"
    assert oracle.actual(conn, date(2026, 10, 1), date(2026, 10, 6)) == population


def test_messages_lost_past_every_retry_fail_the_run_and_redrive_re_enqueues_it(conn, etl, population, database_url,
                                                                               tmp_path, monkeypatch):
    # given an execution every one of whose chunk messages is lost (the item's retries included)
    monkeypatch.setenv("ETL_CHUNK_TIMEOUT_S", "2")
    with LocalCloud(database_url, options=LocalOptions(max_concurrency=1), state_dir=tmp_path,
                    env={"ETL_CHUNK_TIMEOUT_S": "2"}) as cloud:
        arn = cloud.start_execution("lost-message", {"start_date": START, "end_date": END, "chunk_days": 6,
                                                     "max_concurrency": 1})
        sqs = boto3.client("sqs", region_name="us-east-1")
        lost: list[float] = []
        running = {"yes": True}
        purger = threading.Thread(target=_purge_while, args=(sqs, cloud.queue_url, lambda: running["yes"], lost))
        purger.start()
        try:
            described = cloud.wait(arn)
        finally:
            running["yes"] = False
            purger.join(10)
    # then the Map item gives up after its retries and the run fails naming the chunk that never ran
    assert described["status"] == "FAILED" and described["error"] == "RunFailed"
    assert "2026-10-01..2026-10-06" in described["cause"] and len(lost) == 3  # sent, then retried twice
    run = ledger.list_runs(conn)[0]
    conn.rollback()
    assert run["execution_name"] == "lost-message"
    # when redriven, the chunk (not in any queue) is enqueued again and the run finishes
    monkeypatch.delenv("ETL_CHUNK_TIMEOUT_S")
    redriven = etl("redrive", "--run-id", str(run["run_id"]), "--local", "--json")
    assert redriven.code == 0 and redriven.json["dead_letters_removed"] == 0
    assert oracle.actual(conn, date(2026, 10, 1), date(2026, 10, 6)) == population


def test_killed_run_is_shown_honestly_and_the_same_run_command_closes_it(conn, etl, population, database_url,
                                                                         tmp_path):
    # given `run --local` in its own process, stuck retrying one chunk
    env = {**os.environ, "ETL_FAULT_CHUNKS": "2026-10-05", "ETL_MAX_RECEIVE_COUNT": "20",
           "ETL_RETRY_BASE_MS": "1000", "ETL_RETRY_MAX_MS": "1000", "ETL_RUNS_DIR": str(tmp_path / "runs")}
    process = subprocess.Popen([sys.executable, "-m", "chunking.cli", "run", "--local", "--start", START, "--end", END,
                                *TWO_DAY_CHUNKS, "--database-url", database_url],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        chunks = {}
        while time.monotonic() < deadline:
            runs = ledger.list_runs(conn)
            conn.rollback()
            chunks = _chunks(conn, runs[0]["run_id"]) if runs else {}
            if chunks.get("2026-10-05", {}).get("status") == "RETRYING" and \
                    sum(c["status"] == "SUCCEEDED" for c in chunks.values()) == 2:
                break
            time.sleep(0.1)
        assert chunks, "the run never got going"
        # when its process is killed in the middle of the fan-out
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(10)
    run_id = ledger.list_runs(conn)[0]["run_id"]
    conn.rollback()
    # then status shows the truth: RUNNING, its process gone, two chunks done, one retrying
    status = etl("status", "--run-id", str(run_id))
    assert status.code == 0
    assert "RUNNING" in status.out and f"its process {process.pid} is gone" in status.out
    assert f"abandon --run-id {run_id}" in status.out
    shown = json.loads(etl("status", "--run-id", str(run_id), "--json").out)
    assert sorted(c["status"] for c in shown["chunks"]) == ["RETRYING", "SUCCEEDED", "SUCCEEDED"]
    # when the same run command is started again, it finds the dead run's driver gone, closes that run with the
    # reason (no wait, no abandon), and completes
    fresh = etl("run", "--local", "--start", START, "--end", END, *TWO_DAY_CHUNKS, "--json")
    assert fresh.code == 0 and fresh.json["status"] == "SUCCEEDED"
    closed = ledger.get_run(conn, run_id)
    assert closed["status"] == "FAILED" and f"its process {process.pid} is gone" in closed["error"]
    assert sorted(c["status"] for c in _chunks(conn, run_id).values()) == ["FAILED", "SUCCEEDED", "SUCCEEDED"]
    assert oracle.actual(conn, date(2026, 10, 1), date(2026, 10, 6)) == population
    # the killed run's committed chunks stand: the new run found their conflicts unchanged
    assert fresh.json["unchanged"] == sum(c["inserted"] for c in shown["chunks"] if c["status"] == "SUCCEEDED") > 0


def test_redrive_of_one_chunk_leaves_the_other_failed_chunk_and_its_dead_letter(conn, etl, population, monkeypatch):
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ETL_FAULT_CHUNKS", "2026-10-01,2026-10-05")
    failed = etl("run", "--local", "--start", START, "--end", END, *TWO_DAY_CHUNKS, "--json")
    run_id = failed.json["run_id"]
    ids = {c["chunk_start"]: c["chunk_id"] for c in failed.json["failed_chunks"]}
    assert sorted(ids) == ["2026-10-01", "2026-10-05"]
    monkeypatch.delenv("ETL_FAULT_CHUNKS")
    # when only the Oct 5 chunk is redriven
    partial = etl("redrive", "--run-id", str(run_id), "--chunk-id", str(ids["2026-10-05"]), "--local", "--json")
    # then that chunk succeeds, but the run stays FAILED naming the other; only the redriven letter is removed
    assert partial.code == 1 and partial.json["dead_letters_removed"] == 1
    assert [c["chunk_start"] for c in partial.json["failed_chunks"]] == ["2026-10-01"]
    chunks = _chunks(conn, run_id)
    assert (chunks["2026-10-05"]["status"], chunks["2026-10-01"]["status"]) == ("SUCCEEDED", "FAILED")
    dry = etl("redrive", "--run-id", str(run_id), "--local", "--dry-run", "--json")
    assert [(c["chunk_start"], c["in_dead_letter_queue"]) for c in dry.json["would_redrive"]] == [("2026-10-01", True)]
    # and redriving the rest finishes it
    final = etl("redrive", "--run-id", str(run_id), "--local", "--json")
    assert final.code == 0 and final.json["status"] == "SUCCEEDED"
    assert oracle.actual(conn, date(2026, 10, 1), date(2026, 10, 6)) == population
    assert ledger.get_run(conn, run_id)["redrives"] == 2
    conn.rollback()
