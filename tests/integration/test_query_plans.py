"""Task 02's plan stays linear: EXPLAIN (FORMAT JSON) on a small staged population, right after staging.

The partner side of the band join must be an index range scan on staged_visits_band_idx, once per owner; never a
hash or merge join on the caregiver alone (every pair of a caregiver's visits compared: quadratic in the window)
nor a sequential scan of the staging table. Staging ends with ANALYZE (of the staged visits and of the conflict
map), which is what makes the plan right on freshly loaded data. Timings live in the benchmark, not here."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from chunking import db, ledger, seed, tasks
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


def _plan(conn, run_id: int, chunk_start: date, chunk_end: date) -> dict[str, Any]:
    with conn.cursor() as cur:
        db.set_local(conn, **tasks.STATEMENT_SETTINGS)
        cur.execute("EXPLAIN (FORMAT JSON) " + db.load_sql("tasks/apply_chunk_conflicts"),
                    {"run_id": run_id, "chunk_start": chunk_start, "chunk_end": chunk_end})
        plan = cur.fetchone()[0][0]["Plan"]
    conn.rollback()
    return plan


@pytest.fixture
def population(conn):
    seed.seed_visits(conn, visits=3_000, start=date(2026, 9, 30), days=12, seed=41)
    return conn


@pytest.mark.parametrize(("chunk_start", "chunk_end"), [(START, END), (date(2026, 10, 3), date(2026, 10, 3))],
                         ids=["whole-window", "one-day"])
def test_partners_are_found_by_an_index_range_scan_on_the_band_index(population, chunk_start, chunk_end):
    # given a freshly staged population
    conn = population
    run = _staged_run(conn)
    # when Task 02 is planned for a chunk
    plan = _plan(conn, run["run_id"], chunk_start, chunk_end)
    nodes = list(_nodes(plan))
    # then the band CTE reads partners by a range scan on staged_visits_band_idx, under a nested loop
    band = [n for n, under in nodes if n.get("Index Name") == "staged_visits_band_idx" and "CTE conflicts" in under
            and "start_ts >=" in n.get("Index Cond", "")]
    assert band, "the partner lookup is not a range scan on staged_visits_band_idx"
    assert all(n["Node Type"] in ("Index Scan", "Index Only Scan") for n in band)
    assert "caregiver_id = x.caregiver_id" in band[0]["Index Cond"]
    assert "start_ts <=" in band[0]["Index Cond"]
    loops = [n for n, under in nodes if n["Node Type"] == "Nested Loop" and "CTE conflicts" in under and
             any(c.get("Node Type") == "CTE Scan" and c.get("CTE Name") == "owners" for c in n.get("Plans", []))]
    assert loops, "the owners do not drive a nested loop over the band index"


@pytest.mark.parametrize(("chunk_start", "chunk_end"), [(START, END), (date(2026, 10, 3), date(2026, 10, 3))],
                         ids=["whole-window", "one-day"])
def test_no_join_on_caregiver_alone_and_no_seq_scan_of_staging_for_partners(population, chunk_start, chunk_end):
    conn = population
    run = _staged_run(conn)
    plan = _plan(conn, run["run_id"], chunk_start, chunk_end)
    for node, under in _nodes(plan):
        condition = node.get("Hash Cond", "") + node.get("Merge Cond", "")
        assert not (node["Node Type"] in ("Hash Join", "Merge Join") and "caregiver_id" in condition), \
            f"{node['Node Type']} on {condition}: a join on the caregiver alone"
        if node.get("Relation Name") == "staged_visits" and node["Node Type"] == "Seq Scan":
            assert under == ("CTE owners",), f"a sequential scan of the staging table under {under}"


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
                    "WHERE (n.nspname, c.relname) IN (('etl', 'staged_visits'), ('conflict', 'conflict_visit_maps'))")
        tuples = dict(cur.fetchall())
    conn.rollback()
    assert staged > 0 and mapped > 0
    assert tuples == {"staged_visits": staged, "conflict_visit_maps": mapped}


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
