"""Task 02's plan stays linear: EXPLAIN (FORMAT JSON) on a small staged population, right after staging.

The partner side of the band join must be an index range scan on the run's staging partition's band index
(staged_visits_<run>_band_idx), once per owner; never a hash or merge join on the caregiver alone (every pair of a
caregiver's visits compared: quadratic in the window) nor a sequential scan of the staging table. Staging ends
with ANALYZE (of the run's staged visits and of the conflict map), which is what makes the plan right on freshly
loaded data. And the plan must not depend on the statistics: a first run plans against a conflict map analysed
empty while a sibling chunk inserts into it; no rescan of the map per row may appear then either.
Timings live in the benchmark, not here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg2
import pytest

from chunking import db, freshness, ledger, seed, tasks
from chunking.errors import TransientError
from chunking.planner import fixed_sizing
from tests.factories import run_window

START, END = date(2026, 10, 1), date(2026, 10, 6)


def _nodes(node: dict[str, Any], under: tuple[str, ...] = ()) -> Iterator[tuple[dict[str, Any], tuple[str, ...]]]:
    """Every plan node with the CTE / subplan names above it."""
    here = (*under, node["Subplan Name"]) if node.get("Subplan Name") else under
    yield node, here
    for child in node.get("Plans", []):
        yield from _nodes(child, here)


def _staged_run(conn, execution: str = "plans") -> dict[str, Any]:
    run = ledger.begin_run(conn, execution_name=execution, trigger="test", executor="test", window_start=START,
                           window_end=END, chunk_days=31, max_chunk_rows=None, max_concurrency=1)
    tasks.stage_visits(conn, run["run_id"], START, END)
    return run


def _plan(conn, run_id: int, chunk_start: date, chunk_end: date, days: list[date] | None = None) -> dict[str, Any]:
    with conn.cursor() as cur:
        db.set_local(conn, **tasks.STATEMENT_SETTINGS)
        cur.execute("EXPLAIN (FORMAT JSON) " + db.load_sql("tasks/apply_chunk_conflicts"),
                    {"run_id": run_id, "chunk_start": chunk_start, "chunk_end": chunk_end, "days": days})
        plan = cur.fetchone()[0][0]["Plan"]
    conn.rollback()
    return plan


@pytest.fixture
def population(conn):
    seed.seed_visits(conn, visits=3_000, start=date(2026, 9, 30), days=12, seed=41)
    return conn


CHUNKS = [(START, END, None), (date(2026, 10, 3), date(2026, 10, 3), None),
          # a stale run's chunk owning two days of its range (etl.chunks.owned_days)
          (date(2026, 10, 2), date(2026, 10, 5), [date(2026, 10, 2), date(2026, 10, 5)])]
CHUNK_IDS = ["whole-window", "one-day", "owned-days"]


@pytest.mark.parametrize(("chunk_start", "chunk_end", "days"), CHUNKS, ids=CHUNK_IDS)
def test_partners_are_found_by_an_index_range_scan_on_the_band_index(population, chunk_start, chunk_end, days):
    # given a freshly staged population
    conn = population
    run = _staged_run(conn)
    # when Task 02 is planned for a chunk
    plan = _plan(conn, run["run_id"], chunk_start, chunk_end, days)
    nodes = list(_nodes(plan))
    # then the band CTE reads partners by a range scan on staged_visits_band_idx, under a nested loop
    index = f"staged_visits_{run['run_id']}_band_idx"
    band = [n for n, under in nodes if n.get("Index Name") == index and "CTE conflicts" in under
            and "start_ts >=" in n.get("Index Cond", "")]
    assert band, f"the partner lookup is not a range scan on {index}"
    assert all(n["Node Type"] in ("Index Scan", "Index Only Scan") for n in band)
    assert "caregiver_id = x.caregiver_id" in band[0]["Index Cond"]
    assert "start_ts <=" in band[0]["Index Cond"]
    loops = [n for n, under in nodes if n["Node Type"] == "Nested Loop" and "CTE conflicts" in under and
             any(c.get("Node Type") == "CTE Scan" and c.get("CTE Name") == "owners" for c in n.get("Plans", []))]
    assert loops, "the owners do not drive a nested loop over the band index"


@pytest.mark.parametrize(("chunk_start", "chunk_end", "days"), CHUNKS, ids=CHUNK_IDS)
def test_no_join_on_caregiver_alone_and_no_seq_scan_of_staging_for_partners(population, chunk_start, chunk_end, days):
    conn = population
    run = _staged_run(conn)
    plan = _plan(conn, run["run_id"], chunk_start, chunk_end, days)
    for node, under in _nodes(plan):
        condition = node.get("Hash Cond", "") + node.get("Merge Cond", "")
        assert not (node["Node Type"] in ("Hash Join", "Merge Join") and "caregiver_id" in condition), \
            f"{node['Node Type']} on {condition}: a join on the caregiver alone"
        if node.get("Relation Name") == f"staged_visits_{run['run_id']}" and node["Node Type"] == "Seq Scan":
            assert under == ("CTE owners",), f"a sequential scan of the staging table under {under}"


def test_a_run_that_filled_the_conflict_map_leaves_it_analysed(population):
    # given a first run over an empty map, which its chunks fill
    conn = population
    run_window(conn, START.isoformat(), END.isoformat())
    # then at its end, before any other run stages, the map's statistics describe what its chunks wrote (the next
    # run's freshness check, staging and fingerprint read plan against them, and do not pay for the ANALYZE)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM conflict.conflict_visit_maps")
        mapped = cur.fetchone()[0]
        cur.execute("SELECT reltuples FROM pg_class WHERE oid = 'conflict.conflict_visit_maps'::regclass")
        tuples = cur.fetchone()[0]
    conn.rollback()
    assert mapped > 0 and tuples == mapped


def test_a_failed_refresh_of_the_maps_statistics_does_not_fail_the_reconciliation(population, monkeypatch):
    # given a run whose chunks filled the map, and a database that refuses the ANALYZE after the run is closed
    conn = population
    run = ledger.begin_run(conn, execution_name="no-analyze", trigger="test", executor="test", window_start=START,
                           window_end=END, chunk_days=31, max_chunk_rows=None, max_concurrency=1)
    tasks.stage_visits(conn, run["run_id"], START, END)
    for chunk in tasks.plan_run(conn, run, fixed_sizing(31, 10**9)):
        tasks.apply_chunk(conn, run_id=run["run_id"], chunk_id=chunk.chunk_id, chunk_start=chunk.start,
                          chunk_end=chunk.end, worker="test", remaining_ms=lambda: 60_000, margin_ms=1_000,
                          final_attempt=True)
    execute = db.execute

    def refusing(c, name, params=None):
        if name == "tasks/analyze_conflict_maps":
            raise TransientError("canceling statement due to lock timeout", code="55P03")
        return execute(c, name, params)

    monkeypatch.setattr(db, "execute", refusing)
    # when the run is reconciled, then it succeeds, and the ledger says so (a retry of the step would find it closed)
    assert tasks.reconcile_run(conn, run["run_id"]).status == "SUCCEEDED"
    monkeypatch.undo()
    assert ledger.get_run(conn, run["run_id"])["status"] == "SUCCEEDED"
    conn.rollback()


def test_chunk_writes_the_statistics_system_reports_after_the_runs_analyze_do_not_analyse_the_map_again(population):
    # given a run whose chunks are applied by another session (a worker), reconciled while that session is still
    # connected, so that its writes reach the statistics system only when it disconnects: after the ANALYZE
    conn = population
    run = ledger.begin_run(conn, execution_name="late-stats", trigger="test", executor="test", window_start=START,
                           window_end=END, chunk_days=31, max_chunk_rows=None, max_concurrency=1)
    tasks.stage_visits(conn, run["run_id"], START, END)
    chunks = tasks.plan_run(conn, run, fixed_sizing(31, 10**9))
    worker = psycopg2.connect(conn.dsn)
    for chunk in chunks:
        tasks.apply_chunk(worker, run_id=run["run_id"], chunk_id=chunk.chunk_id, chunk_start=chunk.start,
                          chunk_end=chunk.end, worker="test", remaining_ms=lambda: 60_000, margin_ms=1_000,
                          final_attempt=True)
    assert tasks.reconcile_run(conn, run["run_id"]).status == "SUCCEEDED"
    worker.close()
    with conn.cursor() as cur:
        for _ in range(100):  # the statistics system counts the chunks' writes as made since that ANALYZE
            cur.execute("SELECT n_mod_since_analyze, n_live_tup FROM pg_stat_user_tables "
                        "WHERE relid = 'conflict.conflict_visit_maps'::regclass")
            modified, live = cur.fetchone()
            conn.rollback()
            if modified > 50 + 0.1 * live:
                break
            time.sleep(0.05)
        assert modified > 50 + 0.1 * live, "the worker's writes never reached the statistics system: nothing tested"
        # when the next staging asks whether the map changed enough, then it has not: its writes are counted from the
        # ledger, as made before that ANALYZE (schema 16)
        cur.execute("SELECT etl.analyze_conflict_maps_if_changed()")
        assert cur.fetchone()[0] is False
    conn.rollback()


def test_staging_ends_with_analyze_of_staged_visits_and_of_the_conflict_map(population):
    # given a first run, so that the conflict map holds rows, then a second run's staging
    conn = population
    run_window(conn, START.isoformat(), END.isoformat())
    run = _staged_run(conn, "second")
    # then both tables' statistics describe what is there now
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM etl.staged_visits WHERE run_id = %s", (run["run_id"],))
        staged = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM conflict.conflict_visit_maps")
        mapped = cur.fetchone()[0]
        cur.execute("SELECT c.relname, c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE (n.nspname, c.relname) IN (('etl', %s), ('conflict', 'conflict_visit_maps'))",
                    (f"staged_visits_{run['run_id']}",))
        tuples = dict(cur.fetchall())
    conn.rollback()
    assert staged > 0 and mapped > 0
    assert tuples == {f"staged_visits_{run['run_id']}": staged, "conflict_visit_maps": mapped}


def test_staging_leaves_the_map_statistics_alone_when_the_map_barely_changed(population):
    # given a first run (the map filled, and analysed by the next staging)
    conn = population
    run_window(conn, START.isoformat(), END.isoformat())
    _staged_run(conn, "analyses")

    def analysed_at() -> Any:
        with conn.cursor() as cur:
            cur.execute("SELECT last_analyze FROM pg_stat_user_tables WHERE relid = 'conflict.conflict_visit_maps'"
                        "::regclass")
            row = cur.fetchone()
        conn.rollback()
        return row[0]

    with conn.cursor() as cur:
        cur.execute("SELECT etl.analyze_conflict_maps_if_changed()")
        assert cur.fetchone()[0] is False  # nothing changed since
        # when a few rows change (fewer than 50 + 10 per cent), then twenty times as many are added
        cur.execute("UPDATE conflict.conflict_visit_maps SET overlap_minutes = overlap_minutes WHERE ctid IN "
                    "(SELECT ctid FROM conflict.conflict_visit_maps LIMIT 3)")
        cur.execute("SELECT etl.analyze_conflict_maps_if_changed()")
        few = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM conflict.conflict_visit_maps")
        mapped = cur.fetchone()[0]
        columns = ("caregiver_id, conflict_date, conflict_type, overlap_minutes, gap_minutes, distance_miles, status, "
                   "first_detected_run_id, last_changed_run_id")
        cur.execute(f"INSERT INTO conflict.conflict_visit_maps (visit_id, conflict_visit_id, {columns}) "
                    f"SELECT visit_id + k * 10000000, conflict_visit_id + k * 10000000, {columns} "
                    "FROM conflict.conflict_visit_maps "
                    "CROSS JOIN generate_series(1, 20) AS k")
        cur.execute("SELECT etl.analyze_conflict_maps_if_changed()")
        many = cur.fetchone()[0]
        cur.execute("SELECT reltuples FROM pg_class WHERE oid = 'conflict.conflict_visit_maps'::regclass")
        tuples = cur.fetchone()[0]
    conn.rollback()
    # then the map was analysed again only after the second change, which its statistics now describe
    assert (few, many) == (False, True) and tuples == 21 * mapped
    assert analysed_at() is not None


def test_a_rerun_resolves_without_a_nested_loop_over_the_chunks_conflicts(population):
    # given a conflict map filled by a first run, and a second run staged over the same window
    conn = population
    run_window(conn, START.isoformat(), END.isoformat())
    run = _staged_run(conn, "rerun")
    # when Task 02 is planned over the window
    plan = _plan(conn, run["run_id"], START, END)
    # then the resolve step's anti join is hashed or merged, never a rescan of the conflicts per ACTIVE row
    [anti] = [n for n, under in _nodes(plan) if "CTE resolved" in under and "Anti" in n.get("Join Type", "")]
    assert anti["Node Type"] in ("Hash Join", "Merge Join"), anti["Node Type"]


def _sibling_inserting(database_url: str, rows: int) -> Any:
    """Another connection inside a chunk's transaction: it has inserted ``rows`` conflicts (dated outside the
    chunk planned here) and not committed yet, as the first chunk of a first run does while its sibling runs."""
    sibling = psycopg2.connect(database_url)
    with sibling.cursor() as cur:
        cur.execute("INSERT INTO conflict.conflict_visit_maps (visit_id, conflict_visit_id, caregiver_id, "
                    "conflict_date, conflict_type, overlap_minutes, status, first_detected_run_id, "
                    "last_changed_run_id) "
                    "SELECT 10000000 + g, 20000000 + g, g %% 50, date '2026-10-01', 'OVERLAP', 10, 'ACTIVE', 1, 1 "
                    "FROM generate_series(1, %s) g", (rows,))
    return sibling


@pytest.mark.parametrize("sibling_rows", [0, 20_000], ids=["map-empty", "sibling-inserting"])
def test_first_run_against_a_map_analysed_empty_has_no_rescan_of_the_map(population, database_url, sibling_rows):
    # given a first run: the conflict map analysed empty by staging (zero pages when the chunk is planned) or
    # holding a sibling chunk's uncommitted rows
    conn = population
    run = _staged_run(conn, "first")
    with conn.cursor() as cur:
        cur.execute("SELECT reltuples FROM pg_class WHERE oid = 'conflict.conflict_visit_maps'::regclass")
        assert cur.fetchone()[0] == 0
    conn.rollback()
    sibling = _sibling_inserting(database_url, sibling_rows)
    try:
        # when Task 02 is planned for a chunk
        plan = _plan(conn, run["run_id"], date(2026, 10, 3), END)
    finally:
        sibling.rollback()
        sibling.close()
    nodes = list(_nodes(plan))
    # then the map is never read by a sequential scan (one inside a nested loop rescans it per row, and every
    # rescan also reads what the sibling inserted: quadratic)
    scans = [(n["Node Type"], under) for n, under in nodes if n.get("Relation Name") == "conflict_visit_maps"
             and n["Node Type"] == "Seq Scan"]
    assert not scans, f"sequential scans of the conflict map: {scans}"
    # and each conflict's stored row is found by a primary-key probe, under a nested loop driven by the conflicts
    [lookup] = [n for n, under in nodes if "CTE changes" in under and n.get("Relation Name") == "conflict_visit_maps"]
    assert lookup["Node Type"] in ("Index Scan", "Index Only Scan")
    assert lookup["Index Name"] == "conflict_visit_maps_pkey"
    assert "c.visit_id" in lookup["Index Cond"] or "c_1.visit_id" in lookup["Index Cond"], lookup["Index Cond"]
    # and the resolve step's anti join is hashed or merged, never a rescan of the conflicts per ACTIVE row
    [anti] = [n for n, under in nodes if "CTE resolved" in under and "Anti" in n.get("Join Type", "")]
    assert anti["Node Type"] in ("Hash Join", "Merge Join"), anti["Node Type"]
    # and every nested loop is one of the per-row index lookups: its inner side is parameterised by the outer row
    for node, under in nodes:
        if node["Node Type"] == "Nested Loop":
            inner = node["Plans"][1]
            assert inner["Node Type"] in ("Subquery Scan", "Index Scan", "Index Only Scan", "Hash Join") and \
                _parameterised(inner), f"a nested loop under {under} rescans {inner['Node Type']} unparameterised"


def _parameterised(node: dict[str, Any]) -> bool:
    """Does the subtree read by an index condition (or filter) that names an outer row's column?"""
    for n, _ in _nodes(node):
        if n["Node Type"] in ("Index Scan", "Index Only Scan") and "." in n.get("Index Cond", "") and \
                any(f"{alias}." in n["Index Cond"] for alias in ("x", "m", "c", "c_1")):
            return True
    return False


def test_set_local_sets_every_value_for_the_transaction_only(conn):
    # given a connection outside any transaction, with the server's defaults
    with conn.cursor() as cur:
        cur.execute("SHOW jit")
        jit_default = cur.fetchone()[0]
    conn.rollback()
    # when a unit of work sets three values at once (one round trip)
    with db.read(conn):
        db.set_local(conn, jit="off", enable_nestloop="off", statement_timeout="4321")
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('jit'), current_setting('enable_nestloop'), "
                        "current_setting('statement_timeout')")
            inside = cur.fetchone()
    # then each held inside it, and none outlives it
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('jit'), current_setting('enable_nestloop')")
        after = cur.fetchone()
    conn.rollback()
    assert inside == ("off", "off", "4321ms")
    assert after == (jit_default, "on")


@pytest.mark.parametrize("days", [None, [date(2026, 10, 2), date(2026, 10, 3)]], ids=["window", "stale days"])
def test_staging_clears_stale_rejections_by_a_set_difference_whatever_the_estimates(population, monkeypatch, days):
    # given a staging that already rejected visits (so the next one has rejections to keep or clear)
    run = _staged_run(population, "plans-first")
    ledger.close_run(population, run["run_id"], "FAILED", "a test: the next run may begin")
    plans: list[dict[str, Any]] = []
    fetch_one = db.fetch_one

    def explained(conn: Any, name: str, params: Any = None) -> Any:
        if name == "tasks/stage_visits":
            with conn.cursor() as cur:
                cur.execute("EXPLAIN (FORMAT JSON) " + db.load_sql(name), params)
                plans.append(cur.fetchone()[0][0]["Plan"])
        return fetch_one(conn, name, params)

    monkeypatch.setattr(db, "fetch_one", explained)
    # when the next staging runs (over the window, or a stale run's days)
    again = ledger.begin_run(population, execution_name="plans-again", trigger="test", executor="test",
                             window_start=START, window_end=END, chunk_days=31, max_chunk_rows=None, max_concurrency=1)
    tasks.stage_visits(population, again["run_id"], START, END, days=days)
    # then the rejections it no longer finds are cleared by a set difference (hashed or sorted), never by a lookup per
    # row whose cost rests on the estimates: no subplan run per row and no nested loop under the DELETE (a NOT IN the
    # planner would not hash was quadratic in a full run's rejections, a nested-loop anti-join in a stale run's)
    cleared = [n for n, under in _nodes(plans[0]) if "CTE cleared" in under]
    assert any(n["Node Type"] == "SetOp" for n in cleared)
    assert not any(n["Node Type"] == "Nested Loop" and any(c.get("Node Type") == "CTE Scan" for c in n.get("Plans", []))
                   for n in cleared)
    assert not any(n.get("Parent Relationship") == "SubPlan" for n in cleared)


def test_the_late_caregivers_partner_visits_are_estimated_near_their_number(conn):
    # given a long horizon (40 days), and a stale staging of its last 3 days, whose late caregivers' rows
    # (etl.late_partner_rows) the fingerprint read takes from 7 staged days of the 44
    seed.seed_visits(conn, visits=300 * 44, start=date(2026, 9, 1), days=44, seed=41)
    owner = [date(2026, 10, 8), date(2026, 10, 9), date(2026, 10, 10)]
    # when the read is planned and run in a staging's snapshot
    with db.read(conn, snapshot=True), conn.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + db.load_sql("freshness/read_fingerprints"),
                    freshness.read_parameters(owner))
        plan = cur.fetchone()[0][0]["Plan"]
    # then the scan of the visits the late caregivers may reach is estimated within a few times its rows. A date range
    # beside the list of staged days (redundant) multiplied the two selectivities: 12x too few here, 28x at 1M visits,
    # where about one planning in 40 then merged on the date alone, the caregiver in the join filter: 27M comparisons,
    # 1.4-2.9 s instead of 0.1 s (the plan changed with each ANALYZE's sample: it is the estimate that is tested)
    scans = [n for n, under in _nodes(plan) if "CTE late_rows" in under and n.get("Relation Name") == "visits"]
    partners = max(scans, key=lambda n: n["Actual Rows"] * n["Actual Loops"])
    assert partners["Actual Rows"] > 1_000  # the premise: the 7 days' visits from 02:00
    assert partners["Plan Rows"] >= partners["Actual Rows"] / 4, partners
