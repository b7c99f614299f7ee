"""The run row's lock protocol: chunks share it, staging and reconciliation take it exclusively, and a
heartbeat never waits for either (a blocked heartbeat would serialise every chunk behind the others)."""

from __future__ import annotations

import time
from datetime import date

import psycopg2
import pytest

from chunking import db, ledger
from chunking.errors import TransientError


@pytest.fixture
def run(conn):
    return ledger.begin_run(conn, execution_name="locks", trigger="test", executor="test",
                            window_start=date(2026, 10, 1), window_end=date(2026, 10, 1), chunk_days=1,
                            max_chunk_rows=None, max_concurrency=2)


def _other(database_url, timeout_ms=2_000):
    other = psycopg2.connect(database_url)
    with other.cursor() as cur:
        cur.execute("SET lock_timeout = %s", (timeout_ms,))
    other.commit()
    return other


def _heartbeat(conn, run_id):
    with conn.cursor() as cur:
        cur.execute("SELECT heartbeat_at FROM etl.runs WHERE run_id = %s", (run_id,))
        beat = cur.fetchone()[0]
    conn.rollback()
    return beat


def test_heartbeat_does_not_wait_for_chunks_in_flight(conn, database_url, run):
    # given two chunks in flight, each holding the run row shared
    chunks = [_other(database_url) for _ in range(2)]
    for chunk in chunks:
        db.fetch_one(chunk, "ledger/lock_run_shared", {"run_id": run["run_id"]})
    try:
        before = _heartbeat(conn, run["run_id"])
        time.sleep(0.01)
        # when the driver (or another worker) beats
        began = time.monotonic()
        ledger.touch_run(conn, run["run_id"])
        # then it neither waits nor is skipped
        assert time.monotonic() - began < 1
        assert _heartbeat(conn, run["run_id"]) > before
    finally:
        for chunk in chunks:
            chunk.close()


def test_heartbeat_skips_while_staging_holds_the_run(conn, database_url, run):
    staging = _other(database_url)
    db.fetch_one(staging, "ledger/lock_run_exclusive", {"run_id": run["run_id"]})
    try:
        before = _heartbeat(conn, run["run_id"])
        began = time.monotonic()
        ledger.touch_run(conn, run["run_id"])
        assert time.monotonic() - began < 1
        assert _heartbeat(conn, run["run_id"]) == before
    finally:
        staging.close()


def test_staging_waits_for_a_chunk_in_flight(conn, database_url, run):
    chunk = _other(database_url)
    db.fetch_one(chunk, "ledger/lock_run_shared", {"run_id": run["run_id"]})
    staging = _other(database_url, timeout_ms=300)
    try:
        with pytest.raises(TransientError) as waited:
            db.fetch_one(staging, "ledger/lock_run_exclusive", {"run_id": run["run_id"]})
        assert waited.value.code == "55P03"  # lock_not_available: lock_timeout, classified by SQLSTATE
    finally:
        staging.close()
        chunk.close()
