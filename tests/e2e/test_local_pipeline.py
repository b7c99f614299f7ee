"""The whole pipeline through the real state-machine definition, in the local emulator, on a real PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import date

import pytest

from chunking import ledger, seed
from chunking.emulator import ASL_PATH, LocalCloud, LocalOptions
from tests import oracle
from tests.factories import conflicts, writes

pytestmark = pytest.mark.e2e

START, END = "2026-10-01", "2026-10-06"
TWO_DAY_CHUNKS = ("--chunk-days", "2", "--max-chunk-rows", "1000000")  # fixed sizing: exact 2-day chunks


def _table(conn):
    """The conflict map without the columns that legitimately differ between runs (ids and times)."""
    return {k: (v["caregiver_id"], v["conflict_date"], v["conflict_type"], v["overlap_minutes"], v["gap_minutes"],
                v["distance_miles"], v["status"]) for k, v in conflicts(conn, status=None).items()}


def test_run_local_executes_the_real_definition_and_leaves_ledger_and_output(conn, etl, tmp_path):
    # given a generated population over a week
    seed.seed_visits(conn, visits=3_000, start=date(2026, 10, 1), days=7, seed=21)
    # when the pipeline runs locally over six of those days, in 2-day chunks, two at a time
    log = tmp_path / "run.jsonl"
    result = etl("run", "--local", "--start", START, "--end", END, *TWO_DAY_CHUNKS, "--max-concurrency", "2",
                 "--json", "--log-file", str(log))
    # then it succeeds, and its JSON summary agrees with the ledger and the output table
    assert result.code == 0, result.err
    summary = result.json
    assert summary["status"] == "SUCCEEDED" and summary["chunks"] == 3
    run = ledger.get_run(conn, summary["run_id"])
    chunks = ledger.list_chunks(conn, summary["run_id"])
    conn.rollback()
    assert [(str(c["chunk_start"]), str(c["chunk_end"]), c["status"], c["attempts"]) for c in chunks] == [
        ("2026-10-01", "2026-10-02", "SUCCEEDED", 1), ("2026-10-03", "2026-10-04", "SUCCEEDED", 1),
        ("2026-10-05", "2026-10-06", "SUCCEEDED", 1)]
    for key in ("inserted", "updated", "resolved", "reopened", "unchanged"):
        assert summary[key] == run[key] == sum(c[key] for c in chunks)
    want, want_rejected = oracle.expected(oracle.load_visits(conn), date(2026, 10, 1), date(2026, 10, 6))
    assert oracle.actual(conn, date(2026, 10, 1), date(2026, 10, 6)) == want
    assert summary["inserted"] == len(want) and summary["rejected"] == len(want_rejected) > 0
    # staging is cleared once the run has ended
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM etl.staged_visits")
        assert cur.fetchone()[0] == 0
    conn.rollback()
    # and the handlers' JSON log lines went to the log file, not the terminal
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert {"run begun", "visits staged", "chunks planned", "chunk done", "run reconciled"} <= \
        {line.get("message") for line in lines}
    assert '"level"' not in result.out


def test_one_day_chunks_at_concurrency_two_equal_one_whole_window_chunk(conn, etl):
    seed.seed_visits(conn, visits=3_000, start=date(2026, 10, 1), days=7, seed=22)
    # when the window runs in one-day chunks, two at a time
    first = etl("run", "--local", "--start", START, "--end", END, "--chunk-days", "1", "--max-concurrency", "2",
                "--json")
    assert first.code == 0 and first.json["chunks"] == 6
    chunked = _table(conn)
    # and, from an empty output, as one chunk over the whole window
    with conn.cursor() as cur:
        cur.execute("TRUNCATE conflict.conflict_visit_maps")
    conn.commit()
    whole = etl("run", "--local", "--start", START, "--end", END, "--chunk-days", "366", "--max-chunk-rows",
                "1000000000", "--json")
    assert whole.code == 0 and whole.json["chunks"] == 1
    # then both give exactly the same table
    assert _table(conn) == chunked and len(chunked) > 50
    assert whole.json["inserted"] == first.json["inserted"]
    # and rerunning either writes nothing
    before = writes(conn)
    for chunking in (["--chunk-days", "1"], ["--chunk-days", "366", "--max-chunk-rows", "1000000000"], []):
        again = etl("run", "--local", "--start", START, "--end", END, *chunking, "--json")
        assert again.code == 0
        assert (again.json["inserted"], again.json["updated"], again.json["resolved"], again.json["reopened"]) \
            == (0, 0, 0, 0)
        assert again.json["unchanged"] == len(chunked)
    assert writes(conn) == before


def test_second_run_while_one_is_active_fails_at_once_naming_it(conn, etl):
    # given an active run
    active = ledger.begin_run(conn, execution_name="nightly-2026-10-07", trigger="schedule", executor="elsewhere",
                              window_start=date(2026, 10, 1), window_end=date(2026, 10, 7), chunk_days=7,
                              max_chunk_rows=100, max_concurrency=2)
    # when another run is started
    began = time.monotonic()
    result = etl("run", "--local", "--start", START, "--end", END)
    # then it fails at once, naming the active run, and changes nothing
    assert result.code == 1
    assert time.monotonic() - began < 5
    assert f"run {active['run_id']}" in result.err and "nightly-2026-10-07" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert [r["run_id"] for r in ledger.list_runs(conn)] == [active["run_id"]]


def test_state_machine_rejects_a_second_active_run_itself(conn, database_url, tmp_path):
    # given an active run, and an execution started behind the CLI's back (as the schedule would)
    active = ledger.begin_run(conn, execution_name="manual-1", trigger="cli", executor="elsewhere",
                              window_start=date(2026, 10, 1), window_end=date(2026, 10, 2), chunk_days=7,
                              max_chunk_rows=100, max_concurrency=2)
    with LocalCloud(database_url, options=LocalOptions(max_concurrency=1), state_dir=tmp_path) as cloud:
        arn = cloud.start_execution("scheduled-2026-10-08", {"trigger": "schedule"})
        described = cloud.wait(arn)
        states = [e.get("stateEnteredEventDetails", {}).get("name") for e in cloud.history(arn)]
    # then ValidateConfig refuses it and the execution fails in RequestRejected, naming the active run
    assert described["status"] == "FAILED" and described["error"] == "RunAlreadyActive"
    assert f"run {active['run_id']}" in described["cause"]
    assert [s for s in states if s] == ["ValidateConfig", "RequestRejected"]


def test_execution_visits_every_state_of_the_definition_on_success(conn, database_url, tmp_path):
    seed.seed_visits(conn, visits=500, start=date(2026, 10, 1), days=3, seed=23)
    with LocalCloud(database_url, options=LocalOptions(max_concurrency=2), state_dir=tmp_path) as cloud:
        cloud.start_workers()
        arn = cloud.start_execution("e2e-history", {"start_date": "2026-10-01", "end_date": "2026-10-03",
                                                    "chunk_days": 1})
        described = cloud.wait(arn)
        entered = [e["stateEnteredEventDetails"]["name"] for e in cloud.history(arn)
                   if "stateEnteredEventDetails" in e]
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"])["status"] == "SUCCEEDED"
    assert entered.count("ProcessChunk") == 3
    assert [s for s in entered if s != "ProcessChunk"] == ["ValidateConfig", "StageVisits", "PlanChunks", "FanOut",
                                                          "ReconcileRun", "RunSucceededOrFailed", "RunSucceeded"]
    definition = json.loads(ASL_PATH.read_text())
    assert set(entered) <= set(definition["States"]) | set(definition["States"]["FanOut"]["ItemProcessor"]["States"])
