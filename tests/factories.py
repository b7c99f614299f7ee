"""Small builders for visits, and a driver that runs the pipeline's core steps without the emulator."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg2.extras

from chunking import ledger, tasks
from chunking.db import Connection
from chunking.planner import fixed_sizing

D = date.fromisoformat


def ts(day: str, hhmm: str) -> datetime:
    """``ts("2026-10-05", "22:30")``; hours past 24 roll into the next days (``"26:00"`` = 02:00 next day)."""
    hours, minutes = (int(x) for x in hhmm.split(":")[:2])
    seconds = int(hhmm.split(":")[2]) if hhmm.count(":") == 2 else 0
    return datetime.fromisoformat(day) + timedelta(hours=hours, minutes=minutes, seconds=seconds)


@dataclasses.dataclass
class Visit:
    visit_id: int
    caregiver_id: int
    provider_id: int
    visit_date: date
    scheduled_start: datetime
    scheduled_end: datetime
    clock_in: datetime | None = None
    clock_out: datetime | None = None
    clock_in_lat: float | None = 40.0
    clock_in_lon: float | None = -74.0
    status: str = "COMPLETED"
    patient_id: int = 1


def visit(visit_id: int, day: str, start: str, end: str, *, caregiver: int = 1, provider: int = 1,
          at: tuple[float | None, float | None] | None = (40.0, -74.0), clock: tuple[str, str] | None = None,
          status: str = "COMPLETED", visit_date: str | None = None) -> Visit:
    """A visit planned on ``day`` from ``start`` to ``end`` (``"HH:MM"``, past 24 h rolls over)."""
    clock_in = ts(day, clock[0]) if clock and clock[0] else None
    clock_out = ts(day, clock[1]) if clock and clock[1] else None
    lat, lon = at if at is not None else (None, None)
    return Visit(visit_id, caregiver, provider, D(visit_date or day), ts(day, start), ts(day, end),
                 clock_in, clock_out, lat, lon, status)


def late_owners(days: list[date], *conns: Connection, first_id: int = 700_000) -> None:
    """On each day d, for every caregiver of the population (read on the first connection) and one of its own, an
    owner as late as the rules allow: from d + 1 23:59 to d + 2 23:59 (it starts within a day of its date and lasts
    24 h), at an agency of its own. Its reach (docs/freshness.md) is d + 3 01:59, and every caregiver is late on d,
    so d depends on every visit of the days after it that the bound for any data allows: the derivation's widest
    case."""
    with conns[0].cursor() as cur:
        cur.execute("SELECT DISTINCT caregiver_id FROM analytics.visits ORDER BY 1")
        caregivers = [row[0] for row in cur.fetchall()]
    conns[0].rollback()
    assert len(caregivers) < 999, "ids of 1000 per day"
    owners = [visit(first_id + 1000 * i + j, d.isoformat(), "47:59", "71:59", caregiver=caregiver,
                    provider=first_id + 1000 * i + j)
              for i, d in enumerate(days) for j, caregiver in enumerate([*caregivers, first_id + 1000 * i + 999])]
    for c in conns:
        insert(c, *owners)
        c.commit()


def insert(conn: Connection, *visits: Visit) -> None:
    rows = [dataclasses.astuple(v) for v in visits]
    columns = [f.name for f in dataclasses.fields(Visit)]
    with conn.cursor() as cur:
        psycopg2.extras.execute_values(
            cur, f"INSERT INTO analytics.visits ({', '.join(columns)}) VALUES %s", rows)  # test data only
    conn.commit()


def update(conn: Connection, visit_id: int, **changes: Any) -> None:
    """Edit one visit (test data only: column names come from the test code)."""
    assignments = ", ".join(f"{column} = %s" for column in changes)
    with conn.cursor() as cur:
        cur.execute(f"UPDATE analytics.visits SET {assignments}, updated_at = now() WHERE visit_id = %s",
                    (*changes.values(), visit_id))
    conn.commit()


_execution = iter(range(1, 1_000_000))


def run_window(conn: Connection, start: str, end: str, *, chunk_days: int = 366,
               max_chunk_rows: int = 10**9, order: str = "forward") -> dict[str, Any]:
    """Drive the core steps in this process, as the state machine would: begin, stage, plan, every chunk,
    reconcile. Returns the run row. ``order`` ("forward"/"reverse") is the order chunks are applied in."""
    run = ledger.begin_run(conn, execution_name=f"test-{next(_execution)}", trigger="test", executor="test",
                           window_start=D(start), window_end=D(end), chunk_days=chunk_days,
                           max_chunk_rows=max_chunk_rows, max_concurrency=1)
    tasks.stage_visits(conn, run["run_id"], D(start), D(end))
    chunks = tasks.plan_run(conn, run, fixed_sizing(chunk_days, max_chunk_rows))
    for chunk in (reversed(chunks) if order == "reverse" else chunks):
        tasks.apply_chunk(conn, run_id=run["run_id"], chunk_id=chunk.chunk_id, chunk_start=chunk.start,
                          chunk_end=chunk.end, worker="test", remaining_ms=lambda: 60_000, margin_ms=1_000,
                          final_attempt=True)
    outcome = tasks.reconcile_run(conn, run["run_id"])
    assert outcome.status == "SUCCEEDED", outcome.error
    return ledger.get_run(conn, run["run_id"])


def conflicts(conn: Connection, status: str | None = "ACTIVE") -> dict[tuple[int, int], dict[str, Any]]:
    """The conflict map keyed by pair, figures as plain numbers."""
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT * FROM conflict.conflict_visit_maps WHERE %(s)s::text IS NULL OR status = %(s)s",
                    {"s": status})
        rows = [dict(r) for r in cur.fetchall()]
    conn.rollback()
    out = {}
    for r in rows:
        for k in ("overlap_minutes", "gap_minutes", "distance_miles"):
            if isinstance(r[k], Decimal):
                r[k] = float(r[k])
        out[(r["visit_id"], r["conflict_visit_id"])] = r
    return out


def rejected(conn: Connection) -> dict[int, str]:
    with conn.cursor() as cur:
        cur.execute("SELECT visit_id, reason FROM conflict.rejected_visits")
        rows = dict(cur.fetchall())
    conn.rollback()
    return rows


def writes(conn: Connection) -> tuple[Any, ...]:
    """A mark of what the output tables hold: a run that writes nothing leaves it unchanged (counts, the latest
    update and the latest run named in the conflict map and in the rejections)."""
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), max(updated_at), max(last_changed_run_id) FROM conflict.conflict_visit_maps")
        row = cur.fetchone()
        cur.execute("SELECT count(*), max(run_id) FROM conflict.rejected_visits")
        row2 = cur.fetchone()
    conn.rollback()
    assert row is not None and row2 is not None
    return (*row, *row2)


def chunk_rows(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    rows = ledger.list_chunks(conn, run_id)
    conn.rollback()
    return rows
