"""Fault drills against a private PostgreSQL (restarted, its sessions terminated, its driver signalled), with the
real CLI in its own process, the real state-machine definition in the emulator: every run ends by itself as the
docs/reliability.md table says, and its table is the oracle's.

Each fault is placed deterministically: a lock or a one-shot sleep holds the step in question inside the
database until the test sees it waiting there, then the fault strikes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest
from psycopg2 import sql

from chunking import db, seed
from tests import oracle
from tests.private_pg import PrivatePostgres, private_postgres

pytestmark = pytest.mark.e2e

START, END = date(2026, 10, 1), date(2026, 10, 6)
WINDOW = ("--start", START.isoformat(), "--end", END.isoformat(), "--chunk-days", "2", "--max-chunk-rows", "1000000",
          "--max-concurrency", "2")
# The state machine's Retry waits scaled by half: with FULL jitter, six waits scaled by a quarter all fell within a
# 3 s restart (and the server's own restart time) about once in a hundred drills (a Monte Carlo of the waits: 0.6 %
# within 3.5 s, 1.8 % within 4.5 s), and the drill failed for want of retries; by half, 0.01-0.06 %. AWS waits the
# full time.
FAST = {"ETL_RETRY_BASE_MS": "200", "ETL_RETRY_MAX_MS": "1000", "ETL_MAX_RECEIVE_COUNT": "10",
        "ETL_LOCAL_RETRY_SCALE": "0.5"}


@pytest.fixture(scope="module")
def server() -> Iterator[PrivatePostgres]:
    with private_postgres() as pg:
        yield pg


@dataclass
class Drill:
    server: PrivatePostgres
    url: str
    runs_dir: Path
    expected: Any

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ETL_")}
        environment.update({"ETL_RUNS_DIR": str(self.runs_dir), **FAST, **(env or {})})
        return subprocess.Popen([sys.executable, "-m", "chunking.cli", *args, "--database-url", self.url],
                                env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One statement on a fresh connection (the server may have restarted since the last)."""
        conn = psycopg2.connect(self.url, connect_timeout=3)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def wait_for(self, what: str, condition: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg2.OperationalError):
                if condition():
                    return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def backend_waiting(self, *, event: str = "Lock", application: str = "conflict-map%") -> int | None:
        rows = self.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND "
                          "(wait_event_type = %s OR wait_event = %s) AND application_name LIKE %s",
                          (event, event, application))
        return int(rows[0][0]) if rows else None

    def table(self) -> Any:
        conn = psycopg2.connect(self.url)
        try:
            return oracle.actual(conn, START, END)
        finally:
            conn.close()

    def run_row(self, run_id: int) -> dict[str, Any]:
        conn = psycopg2.connect(self.url)
        try:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute("SELECT * FROM etl.runs WHERE run_id = %s", (run_id,))
                run = dict(cur.fetchone())
                cur.execute("SELECT status, count(*) FROM etl.chunks WHERE run_id = %s GROUP BY status", (run_id,))
                run["chunk_states"] = {status: n for status, n in cur.fetchall()}
            return run
        finally:
            conn.close()


@pytest.fixture
def drill(server: PrivatePostgres, tmp_path: Path) -> Iterator[Drill]:
    name = f"etl_fault_{uuid.uuid4().hex[:8]}"
    admin = server.connect()
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg2.extensions.make_dsn(server.url, dbname=name)
    conn = db.connect(url)
    db.migrate(conn)
    seed.seed_visits(conn, visits=1_800, start=START, days=8, seed=97)
    expected, _ = oracle.expected(oracle.load_visits(conn), START, END)
    conn.close()
    yield Drill(server, url, tmp_path / "runs", expected)
    with contextlib.suppress(psycopg2.Error), admin.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    admin.close()


def finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, dict[str, Any] | None, str]:
    out, err = process.communicate(timeout=timeout)
    last = out.strip().splitlines()[-1] if out.strip() else ""
    return process.returncode, (json.loads(last) if last.startswith("{") else None), err


@contextlib.contextmanager
def holding(drill: Drill, *statements: str) -> Iterator[psycopg2.extensions.connection]:
    """A session that holds what ``statements`` lock, in an open transaction, until the block ends (or the
    server goes down)."""
    conn = psycopg2.connect(drill.url)
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    try:
        yield conn
    finally:
        with contextlib.suppress(psycopg2.Error):
            conn.close()


def one_shot_sleep_in_chunks(drill: Drill, seconds: int = 30) -> None:
    """The first chunk statement to insert into the conflict map sleeps (the test strikes meanwhile); later ones
    do not: a sequence is not rolled back with the failed transaction."""
    drill.query("CREATE SEQUENCE IF NOT EXISTS public.fault_once")
    drill.query(f"""CREATE OR REPLACE FUNCTION public.fault_sleep() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN IF nextval('public.fault_once') = 1 THEN PERFORM pg_sleep({int(seconds)}); END IF;
                    RETURN NULL; END $$""")
    drill.query("CREATE TRIGGER fault_sleep BEFORE INSERT ON conflict.conflict_visit_maps "
                "FOR EACH STATEMENT EXECUTE FUNCTION public.fault_sleep()")


def run_id_of(drill: Drill) -> Callable[[], int | None]:
    def latest() -> int | None:
        rows = drill.query("SELECT max(run_id) FROM etl.runs")
        return rows[0][0] if rows and rows[0][0] else None
    return latest


def staged(drill: Drill) -> bool:
    return bool(drill.query("SELECT 1 FROM etl.runs WHERE staged_at IS NOT NULL"))


def strike(drill: Drill, fault: str, pid: int) -> None:
    if fault == "restart":
        drill.server.restart(down_s=3.0)
    else:
        drill.query("SELECT pg_terminate_backend(%s)", (pid,))


def assert_succeeded_with_the_oracles_table(drill: Drill, process: subprocess.Popen[str]) -> dict[str, Any]:
    code, summary, err = finish(process)
    assert code == 0, err
    assert summary is not None and summary["status"] == "SUCCEEDED"
    assert drill.table() == drill.expected
    return summary


# --- each step, each fault: the run ends SUCCEEDED by itself -------------------------------------------------

@pytest.mark.parametrize("fault", ["restart", "terminate"])
def test_fault_during_staging_is_ridden_out(drill: Drill, fault: str) -> None:
    with holding(drill, "BEGIN", "LOCK TABLE analytics.visits IN ACCESS EXCLUSIVE MODE"):
        process = drill.cli("run", "--local", *WINDOW, "--json")
        drill.wait_for("StageVisits waiting on the visits", lambda: drill.backend_waiting() is not None)
        strike(drill, fault, drill.backend_waiting() or 0)
    assert_succeeded_with_the_oracles_table(drill, process)


@pytest.mark.parametrize("fault", ["restart", "terminate"])
def test_fault_during_the_fan_out_is_ridden_out(drill: Drill, fault: str) -> None:
    one_shot_sleep_in_chunks(drill)
    process = drill.cli("run", "--local", *WINDOW, "--json")
    drill.wait_for("a chunk in flight", lambda: drill.backend_waiting(event="PgSleep") is not None)
    strike(drill, fault, drill.backend_waiting(event="PgSleep") or 0)
    summary = assert_succeeded_with_the_oracles_table(drill, process)
    assert summary["chunks"] == 3


@pytest.mark.parametrize("fault", ["restart", "terminate"])
def test_fault_during_reconciliation_is_ridden_out(drill: Drill, fault: str) -> None:
    process = drill.cli("run", "--local", *WINDOW, "--json")
    drill.wait_for("staging", lambda: staged(drill))
    run_id = run_id_of(drill)()
    with holding(drill, "BEGIN", f"SELECT 1 FROM etl.runs WHERE run_id = {int(run_id or 0)} FOR KEY SHARE"):
        drill.wait_for("ReconcileRun waiting on the run row", lambda: drill.backend_waiting() is not None)
        strike(drill, fault, drill.backend_waiting() or 0)
    assert_succeeded_with_the_oracles_table(drill, process)


def test_the_drivers_own_connection_terminated_is_ridden_out(drill: Drill) -> None:
    one_shot_sleep_in_chunks(drill, seconds=3)
    process = drill.cli("run", "--local", *WINDOW, "--json")
    drill.wait_for("a chunk in flight", lambda: drill.backend_waiting(event="PgSleep") is not None)
    killed = drill.query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                         "WHERE application_name = 'etl-pipeline run'")
    assert killed[0][0] >= 1
    assert_succeeded_with_the_oracles_table(drill, process)


# --- an outage that outlasts every retry: an honest ledger, one command to continue ----------------------------

def test_an_outage_longer_than_the_retries_leaves_an_honest_ledger_and_redrive_finishes(drill: Drill) -> None:
    env = {"ETL_LOCAL_RETRY_SCALE": "0.02"}  # StageVisits' and AbortRun's retries pass within ~6 s here
    with holding(drill, "BEGIN", "LOCK TABLE analytics.visits IN ACCESS EXCLUSIVE MODE"):
        process = drill.cli("run", "--local", *WINDOW, "--json", env=env)
        drill.wait_for("StageVisits waiting on the visits", lambda: drill.backend_waiting() is not None)
        run_id = run_id_of(drill)()
        drill.server.stop()
    time.sleep(10)  # longer than every retry of StageVisits and AbortRun
    drill.server.start()
    code, summary, err = finish(process)
    # the execution failed for good; the driver repaired what the steps could not write, and says what next
    assert code == 1 and summary is not None and summary["status"] == "FAILED"
    assert f"redrive --run-id {run_id}" in err + json.dumps(summary)
    run = drill.run_row(int(run_id or 0))
    assert run["status"] == "FAILED" and run["error"]
    assert not set(run["chunk_states"]) & {"RUNNING", "PENDING", "RETRYING"}
    # and the one command it names finishes the run with the oracle's table
    redrive = drill.cli("redrive", "--run-id", str(run_id), "--local", "--json")
    assert_succeeded_with_the_oracles_table(drill, redrive)


# --- signals --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_stops_the_run_cleanly_and_redrive_continues_it(drill: Drill, signum: int, exit_code: int) -> None:
    one_shot_sleep_in_chunks(drill)
    process = drill.cli("run", "--local", *WINDOW, "--json")
    drill.wait_for("a chunk in flight", lambda: drill.backend_waiting(event="PgSleep") is not None)
    run_id = run_id_of(drill)()
    process.send_signal(signum)
    code, said, err = finish(process, timeout=60)
    name = signal.Signals(signum).name
    assert code == exit_code
    assert said is not None and said["exit_code"] == exit_code  # --json: the error is JSON too
    assert said["error"] == (f"run {run_id} STOPPED (stopped by {name}); continue it with: "
                             f"etl-pipeline redrive --run-id {run_id}")
    assert "Traceback" not in err
    run = drill.run_row(int(run_id or 0))
    assert (run["status"], run["error"]) == ("STOPPED", f"stopped by {name}")
    assert not set(run["chunk_states"]) & {"RUNNING", "PENDING", "RETRYING"}
    assert drill.backend_waiting(event="PgSleep") is None  # the chunk in flight was cancelled, not left running
    # nothing half-written: what is in the table is what the committed chunks wrote
    committed = drill.query("SELECT coalesce(sum(inserted), 0) FROM etl.chunks WHERE run_id = %s "
                            "AND status = 'SUCCEEDED'", (run_id,))[0][0]
    assert drill.query("SELECT count(*) FROM conflict.conflict_visit_maps")[0][0] == committed
    redrive = drill.cli("redrive", "--run-id", str(run_id), "--local", "--json")
    assert_succeeded_with_the_oracles_table(drill, redrive)


def test_after_sigkill_the_same_run_command_succeeds_at_once(drill: Drill) -> None:
    one_shot_sleep_in_chunks(drill)
    process = drill.cli("run", "--local", *WINDOW, "--json")
    drill.wait_for("a chunk in flight", lambda: drill.backend_waiting(event="PgSleep") is not None)
    killed_run = run_id_of(drill)()
    process.kill()
    process.wait(10)
    drill.query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep'")
    began = time.monotonic()
    again = drill.cli("run", "--local", *WINDOW, "--json")
    summary = assert_succeeded_with_the_oracles_table(drill, again)
    assert summary["run_id"] != killed_run and time.monotonic() - began < 30
    closed = drill.run_row(int(killed_run or 0))
    assert closed["status"] == "FAILED" and "is gone" in closed["error"]


# --- one driver per run ---------------------------------------------------------------------------------------

def test_two_simultaneous_redrives_one_drives_the_other_is_refused(drill: Drill) -> None:
    for round_ in range(3):
        failed = drill.cli("run", "--local", *WINDOW, "--json",
                           env={"ETL_FAULT_CHUNKS": "2026-10-03", "ETL_MAX_RECEIVE_COUNT": "1"})
        code, summary, err = finish(failed)
        assert code == 1 and summary is not None, err
        run_id = summary["run_id"]
        gate = threading.Barrier(2)
        results: list[tuple[int, dict[str, Any] | None, str]] = []

        def redrive(run: int, into: list[tuple[int, dict[str, Any] | None, str]], gate: threading.Barrier) -> None:
            gate.wait()
            into.append(finish(drill.cli("redrive", "--run-id", str(run), "--local", "--json")))

        threads = [threading.Thread(target=redrive, args=(run_id, results, gate)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        codes = sorted(code for code, _, _ in results)
        assert codes[0] == 0, f"round {round_}: {results}"
        assert codes[1] != 0, f"round {round_}: both redrives succeeded: {results}"
        loser = next(r for r in results if r[0] != 0)
        said = loser[2] + json.dumps(loser[1])
        assert "one driver per run" in said or "is SUCCEEDED" in said, f"round {round_}: {loser}"
        assert drill.run_row(run_id)["status"] == "SUCCEEDED"
        assert drill.table() == drill.expected
