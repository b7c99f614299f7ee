"""The staging table is UNLOGGED (schema 003): crash recovery or a failover empties it. A chunk that finds fewer
staged visits than its plan counted must fail without writing (else it would resolve every conflict of its
dates), and a redrive restages and finishes the run."""

from __future__ import annotations

from datetime import date

import pytest

from chunking import ledger, seed, tasks
from chunking.errors import PermanentError
from chunking.planner import fixed_sizing
from tests import oracle
from tests.factories import chunk_rows, conflicts, run_window

START, END = date(2026, 10, 1), date(2026, 10, 4)


def _apply(conn, run_id, chunk):
    return tasks.apply_chunk(conn, run_id=run_id, chunk_id=chunk.chunk_id, chunk_start=chunk.start,
                             chunk_end=chunk.end, worker="w", remaining_ms=lambda: 60_000, margin_ms=1_000,
                             final_attempt=False)


def _lose_staging(conn):
    """What crash recovery does to an unlogged table: resets it to empty."""
    with conn.cursor() as cur:
        cur.execute("TRUNCATE etl.staged_visits")
    conn.commit()


@pytest.fixture
def planned_rerun(conn):
    """Conflicts found by a first run, and a second run over the same window staged and planned in 2 chunks."""
    seed.seed_visits(conn, visits=2_000, start=START, days=6, seed=61)
    run_window(conn, START.isoformat(), END.isoformat())
    run = ledger.begin_run(conn, execution_name="rerun", trigger="test", executor="test", window_start=START,
                           window_end=END, chunk_days=2, max_chunk_rows=None, max_concurrency=1)
    tasks.stage_visits(conn, run["run_id"], START, END)
    chunks = tasks.plan_run(conn, run, fixed_sizing(chunk_days=2, max_chunk_rows=10**9))
    return run, chunks


def test_staging_table_is_unlogged(conn, planned_rerun):
    # the run's staging partition (schema 004) and its indexes
    run, _ = planned_rerun
    with conn.cursor() as cur:
        cur.execute("SELECT c.relname, c.relpersistence FROM pg_class c WHERE c.oid = %s::regclass "
                    "OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = %s::regclass)",
                    (f"etl.staged_visits_{run['run_id']}",) * 2)
        persistence = dict(cur.fetchall())
    conn.rollback()
    assert persistence == {f"staged_visits_{run['run_id']}{suffix}": "u"
                           for suffix in ("", "_pkey", "_band_idx", "_date_idx")}


def test_chunk_whose_staging_was_lost_fails_for_good_and_writes_nothing(conn, planned_rerun):
    # given ACTIVE conflicts in the window, and the run's staging lost after planning
    run, chunks = planned_rerun
    before = conflicts(conn, status=None)
    assert before
    _lose_staging(conn)
    # when a chunk runs, then it refuses, naming the loss (a permanent error: retrying cannot restage)
    with pytest.raises(PermanentError, match="staging was lost"):
        _apply(conn, run["run_id"], chunks[0])
    # and the conflict map is exactly as it was: nothing resolved, nothing written
    assert conflicts(conn, status=None) == before
    [failed, pending] = chunk_rows(conn, run["run_id"])
    assert failed["status"] == "FAILED" and "redrive" in failed["last_error"]
    assert pending["status"] == "PENDING"


def test_chunk_whose_staging_was_partly_lost_fails_too(conn, planned_rerun):
    run, chunks = planned_rerun
    with conn.cursor() as cur:
        cur.execute("DELETE FROM etl.staged_visits WHERE visit_id IN "
                    "(SELECT visit_id FROM etl.staged_visits WHERE visit_date = %s LIMIT 1)", (chunks[0].start,))
    conn.commit()
    with pytest.raises(PermanentError, match="staging was lost"):
        _apply(conn, run["run_id"], chunks[0])


def test_redrive_restages_and_finishes_the_run_after_a_lost_staging(conn, planned_rerun):
    # given a run whose chunks all failed on a lost staging
    run, chunks = planned_rerun
    _lose_staging(conn)
    for chunk in chunks:
        with pytest.raises(PermanentError):
            _apply(conn, run["run_id"], chunk)
    assert tasks.reconcile_run(conn, run["run_id"]).status == "FAILED"
    # when it is redriven: reopened, restaged, its failed chunks requeued and applied
    ledger.reopen_for_redrive(conn, run["run_id"], "test-redrive")
    tasks.stage_visits(conn, run["run_id"], START, END)
    for chunk in tasks.requeue_chunks(conn, run["run_id"], None, fixed_sizing(chunk_days=2, max_chunk_rows=10**9)):
        _apply(conn, run["run_id"], chunk)
    # then it succeeds, and the conflict map is the rules' answer
    assert tasks.reconcile_run(conn, run["run_id"]).status == "SUCCEEDED"
    want, _ = oracle.expected(oracle.load_visits(conn), START, END)
    assert oracle.actual(conn, START, END) == want
