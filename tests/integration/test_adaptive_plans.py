"""Adaptive sizing against the real ledger: history read from etl.chunks, and a chunk that ran out of time
split on redrive (and sized smaller by the next plan)."""

from __future__ import annotations

from datetime import date

import psycopg2
import pytest

from chunking import db, ledger, pipeline, seed, tasks
from chunking.errors import classify_db_error
from chunking.planner import fixed_sizing
from chunking.settings import Settings
from tests import oracle

START, END = date(2026, 10, 1), date(2026, 10, 4)


def _real_statement_timeout_message(database_url):
    """What the worker records when PostgreSQL cancels a statement at its statement_timeout."""
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = 50")
            cur.execute("SELECT pg_sleep(1)")
    except psycopg2.Error as exc:
        return classify_db_error(exc, timed_out=True)  # what the worker records when its statement hit its limit
    finally:
        conn.close()
    raise AssertionError("the statement was not cancelled")


@pytest.fixture
def failed_run(conn, database_url):
    """A run whose only chunk (4 days) failed at its statement timeout after 30 s."""
    seed.seed_visits(conn, visits=2_000, start=START, days=6, seed=51)
    run = ledger.begin_run(conn, execution_name="timeouts", trigger="test", executor="test", window_start=START,
                           window_end=END, chunk_days=4, max_chunk_rows=None, max_concurrency=1)
    tasks.stage_visits(conn, run["run_id"], START, END)
    [chunk] = tasks.plan_run(conn, run, fixed_sizing(chunk_days=4, max_chunk_rows=10**9))
    error = _real_statement_timeout_message(database_url)
    key = {"run_id": run["run_id"], "chunk_id": chunk.chunk_id}
    with db.transaction(conn):
        attempt = db.fetch_one(conn, "ledger/start_chunk_attempt", {**key, "worker": "w"})["attempt"]
        db.execute(conn, "ledger/fail_chunk_attempt", {**key, "attempt": attempt, "status": "FAILED",
                                                        "error_type": "TransientError", "error": str(error),
                                                        "error_code": error.code, "timed_out": error.timed_out})
        with conn.cursor() as cur:
            cur.execute("UPDATE etl.chunk_attempts SET started_at = finished_at - interval '30 seconds' "
                        "WHERE run_id = %s", (run["run_id"],))
    assert tasks.reconcile_run(conn, run["run_id"]).status == "FAILED"
    return run, chunk, error


def test_a_statement_timeout_is_recognised_by_sqlstate_and_its_limit_not_by_message_text(conn, failed_run):
    run, chunk, error = failed_run
    assert str(error).startswith("QueryCanceled") and error.code == "57014" and error.timed_out
    [recorded] = [c for c in ledger.list_chunks(conn, run["run_id"]) if c["chunk_id"] == chunk.chunk_id]
    assert (recorded["error_code"], recorded["timed_out"]) == ("57014", True)
    assert tasks.ran_out_of_time(recorded)
    # the text decides nothing: an English "statement timeout" that was not one, or a timeout in another language
    assert not tasks.ran_out_of_time({"last_error": "QueryCanceled: canceling statement due to statement timeout",
                                      "timed_out": False})
    assert tasks.ran_out_of_time({"last_error": "QueryCanceled: Anweisung wurde wegen Zeitüberschreitung abgebrochen",
                                  "timed_out": True})


def test_chunk_that_ran_out_of_time_is_redriven_in_two_halves(conn, failed_run):
    run, chunk, _ = failed_run
    # when the run is redriven (reopened, restaged, replanned)
    ledger.reopen_for_redrive(conn, run["run_id"], "test-redrive")
    tasks.stage_visits(conn, run["run_id"], START, END)
    halves = tasks.requeue_chunks(conn, run["run_id"], None, fixed_sizing(chunk_days=4, max_chunk_rows=10**9))
    # then the chunk is superseded by two halves covering its dates, balanced by rows
    assert [(h.chunk_id, h.start, h.end) for h in halves] == [(2, START, date(2026, 10, 2)),
                                                             (3, date(2026, 10, 3), END)]
    rows = {c["chunk_id"]: c for c in ledger.list_chunks(conn, run["run_id"])}
    conn.rollback()
    assert rows[1]["status"] == "SUPERSEDED"
    assert rows[2]["split_from"] == rows[3]["split_from"] == 1
    assert abs(halves[0].estimated_rows - halves[1].estimated_rows) < chunk.estimated_rows / 3
    # and once the halves are applied, the run succeeds with the same table as a clean run
    for half in halves:
        tasks.apply_chunk(conn, run_id=run["run_id"], chunk_id=half.chunk_id, chunk_start=half.start,
                          chunk_end=half.end, worker="w", remaining_ms=lambda: 60_000, margin_ms=1_000,
                          final_attempt=True)
    outcome = tasks.reconcile_run(conn, run["run_id"])
    assert (outcome.status, outcome.chunks) == ("SUCCEEDED", 2)
    want, _ = oracle.expected(oracle.load_visits(conn), START, END)
    assert oracle.actual(conn, START, END) == want and outcome.counts["inserted"] == len(want)


def test_a_late_delivery_of_the_superseded_chunk_is_refused(conn, failed_run):
    run, chunk, _ = failed_run
    ledger.reopen_for_redrive(conn, run["run_id"], "test-redrive")
    tasks.stage_visits(conn, run["run_id"], START, END)
    tasks.requeue_chunks(conn, run["run_id"], None, fixed_sizing(chunk_days=4, max_chunk_rows=10**9))
    with pytest.raises(Exception, match="superseded"):
        tasks.apply_chunk(conn, run_id=run["run_id"], chunk_id=chunk.chunk_id, chunk_start=chunk.start,
                          chunk_end=chunk.end, worker="w", remaining_ms=lambda: 60_000, margin_ms=1_000,
                          final_attempt=True)


def test_the_next_plan_sizes_below_what_ran_out_of_time(conn, failed_run):
    _, chunk, _ = failed_run
    sizing = tasks.plan_sizing(conn, Settings(worker_timeout_s=300), chunk_days=31, fixed_rows=None, concurrency=1)
    # the chunk held ~1,300 visits and did not finish in 30 s: plan at half that rate at most
    assert sizing.rows_per_second <= chunk.estimated_rows / 30 * 0.5 + 1e-6
    assert "timed-out" in sizing.throughput_source


def test_plan_step_records_its_sizing_on_the_run(conn):
    seed.seed_visits(conn, visits=1_000, start=START, days=4, seed=52)
    run = ledger.begin_run(conn, execution_name="sized", trigger="test", executor="test", window_start=START,
                           window_end=END, chunk_days=31, max_chunk_rows=None, max_concurrency=2)
    tasks.stage_visits(conn, run["run_id"], START, END)
    context = {"run_id": run["run_id"], "mode": "run", "window_start": "2026-10-01", "window_end": "2026-10-04",
               "stage_start": "2026-10-01", "stage_end": "2026-10-04", "chunk_days": 31, "max_chunk_rows": None,
               "max_concurrency": 2, "correlation_id": "sized", "chunk_timeout_seconds": 60,
               "chunk_heartbeat_seconds": 60}
    planned = pipeline.plan({"run": context}, conn, Settings())
    assert planned["count"] == 2 and planned["sizing"]["mode"] == "adaptive"
    stored = ledger.get_run(conn, run["run_id"])["sizing"]
    conn.rollback()
    assert stored["throughput_source"] == "default (no history)" and stored["min_chunks"] == 2
