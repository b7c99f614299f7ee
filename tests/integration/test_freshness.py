"""Change-aware runs on a real PostgreSQL: per-day fingerprints, which days are stale, and stale runs judged against
full runs over the same range (on a twin database given the same edits) and against the oracle."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import random
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions
import pytest

from chunking import freshness, ledger, pipeline, seed, tasks
from chunking.drills import fault_drill
from chunking.planner import Throughput, adaptive_sizing, days_between, fixed_sizing, plan_window
from chunking.settings import Settings
from tests import oracle
from tests.conftest import emptied, pipeline_database
from tests.factories import insert, late_owners, visit, writes

SETTINGS = Settings(chunk_queue_url="local://chunks")
POPULATION_START = date(2026, 9, 1)
POPULATION_DAYS = 70
T = TypeVar("T")
RANGE_START, RANGE_END = date(2026, 9, 6), date(2026, 11, 4)  # 60 days, population on both sides
_names = itertools.count(1)
# Visits starting in the daytime of their own date (part 2): an edit of one makes its day STALE, and the days before
# whose owners reach it (the one before when its visits end after midnight, two when they end as late as data allows).
DAYTIME = ("coalesce(clock_in, scheduled_start) >= visit_date + interval '2 hours' "
           "AND coalesce(clock_in, scheduled_start) < visit_date + interval '26 hours'")


def drive(conn: psycopg2.extensions.connection, start: date | None = None, end: date | None = None, *,
          stale: bool = False, chunk_days: int = 3, after: Callable[[str], None] | None = None,
          fault_days: frozenset[date] = frozenset(), reader: bool = True) -> dict[str, Any]:
    """One execution through the pipeline's own steps (ValidateConfig, StageVisits, PlanChunks, every chunk,
    ReconcileRun), as the state machine calls them; ``after(step)`` runs between steps. StageVisits reads the
    fingerprints on a second connection, as the handler does (``reader=False``: in its own transaction). Returns
    the run and its plan's count."""
    request: dict[str, Any] = {"trigger": "test", "chunk_days": chunk_days, "max_chunk_rows": 10**9, "stale": stale}
    if start and end:
        request.update(start_date=start.isoformat(), end_date=end.isoformat())
    run = pipeline.validate_config({"request": request, "execution_name": f"fresh-{next(_names)}",
                                    "execution_start": "2026-11-05T06:00:00Z"}, conn, SETTINGS)
    return _finish(conn, {"run": run}, after, fault_days, reader)


def redrive(conn: psycopg2.extensions.connection, run_id: int) -> dict[str, Any]:
    run = pipeline.validate_config({"request": {"trigger": "redrive", "redrive_run_id": run_id},
                                    "execution_name": f"redrive-{next(_names)}"}, conn, SETTINGS)
    return _finish(conn, {"run": run}, None, frozenset())


def _finish(conn: psycopg2.extensions.connection, event: dict[str, Any], after: Callable[[str], None] | None,
            fault_days: frozenset[date], reader: bool = True) -> dict[str, Any]:
    run_id = event["run"]["run_id"]
    if after:
        after("validated")
    if reader:
        with contextlib.closing(psycopg2.connect(conn.dsn)) as peer:
            pipeline.stage(event, conn, reader=lambda: peer)
    else:
        pipeline.stage(event, conn)
    if after:
        after("staged")
    plan = pipeline.plan(event, conn, SETTINGS)
    for item in plan["chunks"]:
        start, end = date.fromisoformat(item["chunk_start"]), date.fromisoformat(item["chunk_end"])
        try:
            tasks.apply_chunk(conn, run_id=run_id, chunk_id=item["chunk_id"], chunk_start=start, chunk_end=end,
                              worker="test", remaining_ms=lambda: 60_000, margin_ms=1_000, final_attempt=True,
                              before_commit=fault_drill(SETTINGS.model_copy(
                                  update={"fault_chunks": frozenset(fault_days)})))
        except tasks.TransientError:
            assert start in fault_days
    outcome = pipeline.reconcile(event, conn)
    run = ledger.get_run(conn, run_id)
    conn.rollback()
    owned = {c.chunk_id: c.computed_days() for c in ledger.list_chunks(conn, run_id)}
    conn.rollback()
    # per planned chunk, in order, the days it computes (its whole range, or a stale run's selected days in it)
    return {**run, "planned": plan["count"], "outcome": outcome,
            "chunk_days": [owned[c["chunk_id"]] for c in plan["chunks"]]}


def states(conn: psycopg2.extensions.connection, start: date = RANGE_START, end: date = RANGE_END) -> dict[date, str]:
    return {d.date: d.state for d in freshness.day_states(conn, start, end)}


def table(conn: psycopg2.extensions.connection) -> dict[tuple[int, int], tuple[Any, ...]]:
    """The whole conflict map without what legitimately differs between databases (run ids, times)."""
    with conn.cursor() as cur:
        cur.execute("SELECT visit_id, conflict_visit_id, caregiver_id, conflict_date, conflict_type, overlap_minutes, "
                    "gap_minutes, distance_miles, status FROM conflict.conflict_visit_maps")
        rows = {(r[0], r[1]): tuple(r[2:]) for r in cur.fetchall()}
    conn.rollback()
    return rows


def rejections(conn: psycopg2.extensions.connection) -> dict[int, tuple[date, str]]:
    with conn.cursor() as cur:
        cur.execute("SELECT visit_id, visit_date, reason FROM conflict.rejected_visits")
        rows = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
    conn.rollback()
    return rows


def assert_matches_oracle(conn: psycopg2.extensions.connection, start: date, end: date) -> None:
    """The ACTIVE conflicts dated in the range are the oracle's, except pairs whose conflict date moved out of the
    range (a run over the range leaves those ACTIVE on their old date, as the contract's 'outside the window is not
    touched' requires); the rejections in the range are the oracle's."""
    visits = oracle.load_visits(conn)
    want, want_rejected = oracle.expected(visits, start, end)
    anywhere, _ = oracle.expected(visits, date(2000, 1, 1), date(2100, 1, 1))
    got = oracle.actual(conn, start, end)
    moved_out = {k for k in got.keys() - want.keys() if k in anywhere and not start <= anywhere[k][1] <= end}
    assert {k: v for k, v in got.items() if k not in moved_out} == want
    assert {k: r for k, (d, r) in rejections(conn).items() if start <= d <= end} == want_rejected


# --- edits --------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Edit:
    kind: str
    statement: str
    params: tuple[Any, ...]
    visit_id: int


def load(conn: psycopg2.extensions.connection) -> dict[int, dict[str, Any]]:
    return {v["visit_id"]: v for v in oracle.load_visits(conn)}


def random_edit(rng: random.Random, visits: dict[int, dict[str, Any]], used: set[int], next_id: int,
                hot: frozenset[int] = frozenset()) -> Edit:
    """One random edit anywhere in the population (never twice to the same visit in one step, never a no-op),
    more often than not to a visit of a conflict (``hot``) when there are some."""
    kind = rng.choice(["cancel", "uncancel", "delete", "insert", "move_in", "move_out", "move_date_only", "caregiver",
                       "provider", "times", "clock", "coords"])
    candidates = [v for v in visits.values() if v["visit_id"] not in used]
    if hot and rng.random() < 0.6 and any(v["visit_id"] in hot for v in candidates):
        candidates = [v for v in candidates if v["visit_id"] in hot]
    if kind == "uncancel":
        cancelled = [v for v in candidates if v["status"] == "CANCELLED"]
        candidates, kind = (cancelled, kind) if cancelled else (candidates, "cancel")
    if kind == "cancel":
        candidates = [v for v in candidates if v["status"] != "CANCELLED"]
    v = rng.choice(candidates)
    if kind in ("move_in", "move_out", "move_date_only"):
        return _move(rng, kind, v)
    return _change(rng, kind, v, visits, next_id)


UPDATE = "UPDATE analytics.visits SET {} WHERE visit_id = %s"


def _move(rng: random.Random, kind: str, v: dict[str, Any]) -> Edit:
    """A visit to another date: with its times (a rescheduled visit), or its date alone (then often ineligible)."""
    vid, day = v["visit_id"], v["visit_date"]
    if kind == "move_out":  # to a date outside the range, before or after it
        target = rng.choice([RANGE_START - timedelta(days=rng.randint(1, 4)),
                             RANGE_END + timedelta(days=rng.randint(1, 4))])
    else:
        target = day + timedelta(days=rng.choice([-3, -2, -1, 1, 2, 3]))
    shift = timedelta(0) if kind == "move_date_only" else target - day
    return Edit(kind, UPDATE.format("visit_date = %s, scheduled_start = scheduled_start + %s, "
                                    "scheduled_end = scheduled_end + %s, clock_in = clock_in + %s, "
                                    "clock_out = clock_out + %s"),
                (target, shift, shift, shift, shift, vid), vid)


def _change(rng: random.Random, kind: str, v: dict[str, Any], visits: dict[int, dict[str, Any]],
            next_id: int) -> Edit:
    vid = v["visit_id"]
    update = UPDATE
    if kind == "cancel":
        return Edit(kind, update.format("status = 'CANCELLED'"), (vid,), vid)
    if kind == "uncancel":
        return Edit(kind, update.format("status = 'COMPLETED'"), (vid,), vid)
    if kind == "delete":
        return Edit(kind, "DELETE FROM analytics.visits WHERE visit_id = %s", (vid,), vid)
    if kind == "insert":  # a second visit of the same caregiver, at another agency, overlapping or close by
        shift = timedelta(minutes=rng.randint(-90, 90))
        return Edit(kind, "INSERT INTO analytics.visits (visit_id, caregiver_id, provider_id, patient_id, visit_date, "
                    "scheduled_start, scheduled_end, clock_in, clock_out, clock_in_lat, clock_in_lon, status) "
                    "SELECT %s, caregiver_id, provider_id + 1, patient_id, visit_date, scheduled_start + %s, "
                    "scheduled_end + %s, clock_in + %s, clock_out + %s, clock_in_lat + 0.05, clock_in_lon, "
                    "'COMPLETED' FROM analytics.visits WHERE visit_id = %s",
                    (next_id, shift, shift, shift, shift, vid), next_id)
    if kind == "caregiver":
        other = rng.choice([c for c in {x["caregiver_id"] for x in visits.values()} if c != v["caregiver_id"]])
        return Edit(kind, update.format("caregiver_id = %s"), (other, vid), vid)
    if kind == "provider":
        return Edit(kind, update.format("provider_id = provider_id + 1"), (vid,), vid)
    if kind == "times":
        shift = timedelta(minutes=rng.choice([-120, -45, -10, 10, 45, 120]))
        return Edit(kind, update.format("scheduled_start = scheduled_start + %s, scheduled_end = scheduled_end + %s"),
                    (shift, shift, vid), vid)
    if kind == "clock":
        late = timedelta(minutes=rng.choice([15, 60, 300]))
        return Edit(kind, update.format("clock_in = coalesce(clock_in, scheduled_start), "
                                        "clock_out = coalesce(clock_out, scheduled_end) + %s"), (late, vid), vid)
    if v["clock_in_lat"] is None:
        return Edit(kind, update.format("clock_in_lat = 40.7, clock_in_lon = -74.0"), (vid,), vid)
    return Edit(kind, update.format("clock_in_lat = clock_in_lat + %s, clock_in_lon = clock_in_lon - %s"),
                (rng.uniform(0.01, 0.5), rng.uniform(0.01, 0.5), vid), vid)


def apply(edit: Edit, *conns: psycopg2.extensions.connection) -> None:
    for c in conns:
        with c.cursor() as cur:
            cur.execute(edit.statement, edit.params)
        c.commit()


def cancel_daytime(day: date, count: int, *conns: psycopg2.extensions.connection) -> None:
    """Cancel the first ``count`` visits of ``day`` that start in its daytime (part 2), in each database."""
    for c in conns:
        with c.cursor() as cur:
            cur.execute("UPDATE analytics.visits SET status = 'CANCELLED' WHERE visit_id IN (SELECT visit_id FROM "
                        f"analytics.visits WHERE visit_date = %s AND status <> 'CANCELLED' AND {DAYTIME} "
                        "ORDER BY visit_id LIMIT %s)", (day, count))
        c.commit()


Position = tuple[date | None, int]  # a visit's (visit_date, part of the day)
READ = ("visit_id", "caregiver_id", "provider_id", "visit_date", "scheduled_start", "scheduled_end", "clock_in",
        "clock_out", "clock_in_lat", "clock_in_lon", "status")


def part(v: dict[str, Any]) -> int:
    """The part of its day a visit's start lies in (docs/freshness.md, restated): 0 before d - 22 h, 1 until
    d + 2 h, 2 until d + 26 h, 3 after (or no date)."""
    if v["visit_date"] is None:
        return 3
    midnight = datetime.combine(v["visit_date"], time())
    return next((p for p, hours in enumerate((-22, 2, 26)) if v["start"] < midnight + timedelta(hours=hours)), 3)


def rows(conn: psycopg2.extensions.connection) -> dict[int, tuple[Position, tuple[Any, ...]]]:
    """Every visit's position and the values the rules read: what a fingerprint is made of."""
    return {k: ((v["visit_date"], part(v)), tuple(v[c] for c in READ)) for k, v in load(conn).items()}


Version = tuple[Position, tuple[Any, ...]]  # a visit's position and the values the rules read


def changed_versions(before: dict[int, Version], after: dict[int, Version]) -> list[Version]:
    """The versions of the visits that differ: an inserted, deleted or changed visit changes what it was (in the
    part it left) and what it is (in the part it arrived in)."""
    return [version for k in before.keys() | after.keys() if before.get(k) != after.get(k)
            for version in filter(None, (before.get(k), after.get(k)))]


def owner_ends(visits: dict[int, Version]) -> dict[tuple[date, int], datetime]:
    """Per day and caregiver, the latest end of its owners that can be eligible (docs/freshness.md, restated): not
    cancelled, starting before d + 2, lasting more than nothing and at most 24 h."""
    ends: dict[tuple[date, int], datetime] = {}
    for _, values in visits.values():
        v = dict(zip(READ, values, strict=True))
        start, end = v["clock_in"] or v["scheduled_start"], v["clock_out"] or v["scheduled_end"]
        if v["status"] == "CANCELLED" or v["visit_date"] is None or start is None or end is None:
            continue
        if start < datetime.combine(v["visit_date"] + timedelta(days=2), time()) and start < end \
                <= start + timedelta(hours=24):
            key = (v["visit_date"], v["caregiver_id"])
            ends[key] = max(end, ends.get(key, end))
    return ends


def reaches(visits: dict[int, Version]) -> dict[date, datetime]:
    """Per day, the reach of its owners: their latest end plus 2 h."""
    days: dict[date, datetime] = {}
    for (day, _), end in owner_ends(visits).items():
        days[day] = max(end, days.get(day, end))
    return {d: end + timedelta(hours=2) for d, end in days.items()}


def late_reaches(visits: dict[int, Version]) -> dict[date, dict[int, datetime]]:
    """Per day, its late caregivers (an owner ending at or after the next midnight) and their reach: their latest
    end plus 2 h."""
    late: dict[date, dict[int, datetime]] = {}
    for (day, caregiver), end in owner_ends(visits).items():
        if end >= datetime.combine(day + timedelta(days=1), time()):
            late.setdefault(day, {})[caregiver] = end + timedelta(hours=2)
    return late


def depends_on(day: date, version: Version, reach: datetime | None = None,
               late: dict[int, datetime] | None = None) -> bool:
    """For any data, day d depends on all of d and d + 1, parts 0-2 of d + 2, 0-1 of d + 3 and 0 of d + 4; of
    those, given the reach of its owners, only on d itself and the parts that begin at or before the reach (part 0
    at -infinity, 1 at e - 22 h, 2 at e + 2 h, 3 at e + 26 h of the day e it is part of); and of parts 2-3 of a later
    day, only on the visits of a late caregiver of d (``late``: caregiver -> its reach) starting at or before its
    reach."""
    (on, p), values = version
    if on is None or not 0 <= (on - day).days <= tasks.PARTNER_DAYS or p > min(3, tasks.PARTNER_DAYS - (on - day).days):
        return False
    if on == day:
        return True
    begins = None if p == 0 else datetime.combine(on, time()) + timedelta(hours=(-22, 2, 26)[p - 1])
    if not (reach is None or begins is None or begins <= reach):
        return False
    if p < 2:
        return True
    v = dict(zip(READ, values, strict=True))
    caregiver_reach = (late or {}).get(v["caregiver_id"])
    return caregiver_reach is not None and (v["clock_in"] or v["scheduled_start"]) <= caregiver_reach


def derived_stale(conn: psycopg2.extensions.connection, before: dict[int, tuple[Position, tuple[Any, ...]]],
                  after: dict[int, tuple[Position, tuple[Any, ...]]], start: date, end: date) -> set[date]:
    """The derivation of docs/freshness.md, restated from the visits before and after the edits: day d is stale
    when a visit it depends on (given the reach of its owners and of its late caregivers before the edits) changed,
    or a visit of one of its ACTIVE conflicts that lay outside what d depends on was deleted or now lies on a day
    with a changed visit."""
    changed = changed_versions(before, after)
    with conn.cursor() as cur:
        cur.execute("SELECT m.conflict_date, p.visit_id FROM conflict.conflict_visit_maps m "
                    "CROSS JOIN LATERAL (VALUES (m.visit_id), (m.conflict_visit_id)) p (visit_id) "
                    "WHERE m.status = 'ACTIVE'")
        active = cur.fetchall()
    conn.rollback()
    changed_days = {d for (d, _), _ in changed}
    reach, late = reaches(before), late_reaches(before)  # as the last staging saw them: the edits came after it
    stale = {d for d in days_between(start, end)
             if any(depends_on(d, version, reach.get(d), late.get(d)) for version in changed)}
    stale |= {c for c, vid in active if start <= c <= end and vid in before
              and not depends_on(c, before[vid], reach.get(c), late.get(c))
              and (vid not in after or after[vid][0][0] in changed_days)}
    return stale


# --- fixtures -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def twin_url(server_url: str) -> Iterator[str]:
    """A second pipeline database: it gets the same edits and a full run over the range after each."""
    with pipeline_database(server_url, prefix="etl_twin") as url:
        yield url


@pytest.fixture
def twin(twin_url: str) -> Iterator[psycopg2.extensions.connection]:
    yield from emptied(twin_url)


@pytest.fixture
def other(database_url: str) -> Iterator[psycopg2.extensions.connection]:
    """Another session on the pipeline's database: upstream editing visits while a run is in flight."""
    connection = psycopg2.connect(database_url)
    try:
        yield connection
    finally:
        connection.close()


def populate(*conns: psycopg2.extensions.connection, seed_value: int, visits: int = 1_500) -> None:
    for c in conns:
        seed.seed_visits(c, visits=visits, start=POPULATION_START, days=POPULATION_DAYS, seed=seed_value,
                         caregiver_count=15)


# --- tests --------------------------------------------------------------------------------------------------

def test_after_a_full_run_every_day_of_it_is_fresh_and_the_others_never_computed(conn):
    populate(conn, seed_value=3, visits=600)
    assert set(states(conn).values()) == {"NEVER"}
    run = drive(conn, RANGE_START, RANGE_END, chunk_days=7)
    outside = RANGE_END + timedelta(days=1)
    days = {d.date: d for d in freshness.day_states(conn, RANGE_START, outside)}
    assert {d: s.state for d, s in days.items() if d <= RANGE_END} == dict.fromkeys(days_between(RANGE_START,
                                                                                                   RANGE_END), "FRESH")
    assert days[outside].state == "NEVER" and days[outside].run_id is None
    assert {s.run_id for d, s in days.items() if d <= RANGE_END} == {run["run_id"]}


@pytest.mark.parametrize("kind", ["cancel", "uncancel", "delete", "insert", "move_in", "move_out", "move_date_only",
                                  "caregiver", "provider", "times", "clock", "coords"])
def test_each_kind_of_edit_makes_stale_exactly_the_days_the_derivation_names(conn, kind):
    # given a full run over the range
    populate(conn, seed_value=4, visits=600)
    with conn.cursor() as cur:  # something to un-cancel
        cur.execute("UPDATE analytics.visits SET status = 'CANCELLED' WHERE visit_id % 50 = 0")
    conn.commit()
    drive(conn, RANGE_START, RANGE_END, chunk_days=7)
    # when one visit in the middle of the range is edited
    rng = random.Random(kind)
    visits = {k: v for k, v in load(conn).items() if RANGE_START + timedelta(days=10) <= v["visit_date"]
              <= RANGE_END - timedelta(days=10)}
    edit = random_edit(rng, visits, set(), 10**6)
    while edit.kind != kind:
        edit = random_edit(rng, visits, set(), 10**6)
    before = rows(conn)
    apply(edit, conn)
    want = derived_stale(conn, before, rows(conn), RANGE_START, RANGE_END)
    # then the days the derivation names are STALE, and only those
    got = states(conn)
    assert {d for d, s in got.items() if s == "STALE"} == want
    assert {d for d, s in got.items() if s != "STALE"} == set(days_between(RANGE_START, RANGE_END)) - want
    assert 1 <= len(want) <= 2 * (tasks.PARTNER_DAYS + 1) + 2


@pytest.mark.parametrize("caregiver", ["theirs", "another"])
@pytest.mark.parametrize("owners", ["late", "evening"])
@pytest.mark.parametrize(("start", "late_back", "evening_back"), [
    ("-23:00", 4, 4), ("-22:00", 3, 1), ("01:59", 3, 1), ("02:00", 2, 0), ("25:59", 2, 0), ("26:00", 1, 0)])
def test_an_edit_makes_stale_only_the_days_whose_visits_can_pair_with_it(conn, caregiver, owners, start, late_back,
                                                                         evening_back):
    # given, on each of the 4 days before a day e, one owner of caregiver 901: either as late as any data allows
    # (from d + 1 23:59 to d + 2 23:59, its reach d + 3 01:59) or ending in the evening (08:00 to 20:00, its reach
    # d 22:00); and a full run over the range
    edited = RANGE_START + timedelta(days=30)
    for k in range(1, tasks.PARTNER_DAYS + 1):
        d = (edited - timedelta(days=k)).isoformat()
        times = ("47:59", "71:59") if owners == "late" else ("08:00", "20:00")
        insert(conn, visit(800_000 + k, d, *times, caregiver=901, provider=k))
    drive(conn, RANGE_START, RANGE_END, chunk_days=7)
    # when a visit dated e and starting at e + start is added (a part of e: 0 before -22 h, 1 to 2 h, 2 to 26 h), of
    # their caregiver or of another
    hours, minutes = (int(x) for x in start.split(":"))
    begins = datetime.combine(edited, time()) + timedelta(hours=hours, minutes=-minutes if hours < 0 else minutes)
    insert(conn, visit(900_001, begins.date().isoformat(), begins.strftime("%H:%M"),
                       (begins + timedelta(hours=1)).strftime("%H:%M"), caregiver=901 if caregiver == "theirs" else 999,
                       visit_date=edited.isoformat()))
    # then e is STALE, and the days before it whose owners can reach that start. For owners as late as can be, the
    # bound for any data: 4 back from -22 h, 3 from 2 h, 2 from 26 h, 1 after. For owners ending at 20:00, only the
    # parts that begin by 22:00 of their day: part 0 (no beginning) 4 back, part 1 (from e - 22 h) 1 back, later
    # parts none. From part 2 on (e + 2 h), only a late owner of the visit's own caregiver reaches it: another
    # caregiver's visit there makes only e stale
    days_back = late_back if owners == "late" else evening_back
    if caregiver == "another" and begins >= datetime.combine(edited, time(2)):
        days_back = 0
    want = {edited - timedelta(days=k) for k in range(days_back + 1)}
    assert {d for d, s in states(conn).items() if s == "STALE"} == want


def test_edits_that_change_nothing_the_rules_read_keep_days_fresh(conn):
    populate(conn, seed_value=5, visits=600)
    drive(conn, RANGE_START, RANGE_END, chunk_days=7)
    with conn.cursor() as cur:  # upstream touches rows: updated_at and patient_id are not read by the rules
        cur.execute("UPDATE analytics.visits SET updated_at = updated_at + interval '1 day', "
                    "patient_id = patient_id + 1")
    conn.commit()
    assert set(states(conn).values()) == {"FRESH"}


@pytest.mark.parametrize("seed_value", [31, 32, 33])
def test_random_edits_then_stale_runs_leave_what_full_runs_leave(conn, twin, seed_value):
    # given the same population in two databases, each with a full run over the 60-day range
    populate(conn, twin, seed_value=seed_value)
    drive(conn, RANGE_START, RANGE_END, chunk_days=7)
    drive(twin, RANGE_START, RANGE_END, chunk_days=7)
    assert len(table(conn)) > 50
    rng = random.Random(seed_value)
    next_id = 10**6
    recomputed = 0
    for _step in range(8):
        # when a few random edits anywhere in the population land in both
        visits, used, before = load(conn), set(), rows(conn)
        hot = frozenset(i for pair in table(conn) for i in pair)
        for _ in range(rng.randint(1, 4)):
            edit = random_edit(rng, visits, used, next_id, hot)
            next_id += 1
            used.add(edit.visit_id)
            apply(edit, conn, twin)
        want_stale = derived_stale(conn, before, rows(conn), RANGE_START, RANGE_END)
        # then freshness says STALE exactly where the derivation does
        assert {d for d, s in states(conn).items() if s != "FRESH"} == want_stale
        # and a stale run over the range, in 3-day chunks, leaves the table and rejections a full run leaves
        run = drive(conn, RANGE_START, RANGE_END, stale=True)
        full = drive(twin, RANGE_START, RANGE_END, chunk_days=7)
        assert run["status"] == "SUCCEEDED" == full["status"], run["error"]
        assert {d for days in run["chunk_days"] for d in days} == want_stale
        assert table(conn) == table(twin)
        assert rejections(conn) == rejections(twin)
        assert_matches_oracle(conn, RANGE_START, RANGE_END)
        assert set(states(conn).values()) == {"FRESH"}
        recomputed += len(want_stale)
    assert 0 < recomputed < 8 * 60 / 2  # it recomputed some days, far fewer than full runs would
    # and a stale rerun plans nothing and writes nothing
    before = writes(conn)
    again = drive(conn, RANGE_START, RANGE_END, stale=True)
    assert (again["status"], again["planned"], again["chunks_planned"]) == ("SUCCEEDED", 0, 0)
    assert writes(conn) == before


def test_a_stale_run_with_nothing_stale_succeeds_with_zero_chunks_and_writes_nothing(conn):
    populate(conn, seed_value=6, visits=600)
    drive(conn, RANGE_START, RANGE_END, chunk_days=7)
    before = writes(conn), rejections(conn)
    run = drive(conn, RANGE_START, RANGE_END, stale=True)
    assert (run["status"], run["planned"], run["staged_rows"], run["error"]) == ("SUCCEEDED", 0, 0, None)
    assert (writes(conn), rejections(conn)) == before
    assert freshness.run_days(conn, run["run_id"]) == []


def test_a_stale_run_records_which_days_it_took_and_why(conn):
    # given a full run over all but the range's last two days, then one edit on the 20th day
    populate(conn, seed_value=7, visits=600)
    drive(conn, RANGE_START, RANGE_END - timedelta(days=2), chunk_days=7)
    edited = RANGE_START + timedelta(days=19)
    before = rows(conn)
    with conn.cursor() as cur:
        cur.execute("UPDATE analytics.visits SET clock_out = scheduled_end + interval '40 minutes' "
                    "WHERE visit_id = (SELECT min(visit_id) FROM analytics.visits WHERE visit_date = %s "
                    f"AND {DAYTIME})", (edited,))
    conn.commit()
    dependent = derived_stale(conn, before, rows(conn), RANGE_START, RANGE_END - timedelta(days=2)) - {edited}
    # when a stale run covers the range (previewed first, as `plan` would)
    preview_days, preview_chunks = freshness.stale_plan(conn, RANGE_START, RANGE_END, fixed_sizing(3, 10**9))
    run = drive(conn, RANGE_START, RANGE_END, stale=True)
    # then it recorded the edited day, the days before it whose owners can reach a daytime visit of it (the
    # derivation, restated: none, one or two), and the never-run days
    got = {r["day"]: (r["reason"], r["cause_day"]) for r in freshness.run_days(conn, run["run_id"])}
    assert dependent <= {edited - timedelta(days=k) for k in range(1, 3)}
    assert got == {edited: ("CHANGED", edited), **dict.fromkeys(dependent, ("DEPENDENT", edited)),
                   RANGE_END - timedelta(days=1): ("NEVER", None), RANGE_END: ("NEVER", None)}
    # in chunks of 3 of the selected days in date order, whatever lies between them (the fixed sizing's 3 days)
    selected = sorted(got)
    assert run["chunk_days"] == [selected[i:i + 3] for i in range(0, len(selected), 3)]
    assert [c.computed_days() for c in preview_chunks] == run["chunk_days"]
    assert {d.date: (d.reason, d.cause_day) for d in preview_days} == got
    assert run["visits"] == sum(1 for v in load(conn).values() if v["visit_date"] in got and
                                v["status"] != "CANCELLED") - sum(1 for d, _ in rejections(conn).values() if d in got)


@pytest.mark.parametrize("between", ["validated", "staged"])
def test_an_edit_committed_while_a_stale_run_is_in_flight_is_caught_by_the_next(conn, other, twin, between):
    # given two identical databases after a full run, and an edit that makes a few days stale
    populate(conn, twin, seed_value=8, visits=1_000)
    first_edit = RANGE_START + timedelta(days=30)
    late_edit = first_edit + timedelta(days=1)  # a partner day of the stale days, and stale itself
    # (the days before them reach their daytime: every day whose visits can pair with it depends on it)
    late_owners([first_edit - timedelta(days=k) for k in (2, 1, 0)], conn, twin)
    drive(conn, RANGE_START, RANGE_END, chunk_days=7)
    drive(twin, RANGE_START, RANGE_END, chunk_days=7)  # the conflicts the edits resolve exist in both
    cancel_daytime(first_edit, 3, conn, twin)

    def upstream_edits(step: str) -> None:  # another session commits an edit while the run is in flight
        if step == between:
            cancel_daytime(late_edit, 3, other, twin)

    # when a stale run is in flight as upstream commits another edit
    run = drive(conn, RANGE_START, RANGE_END, stale=True, after=upstream_edits)
    assert run["status"] == "SUCCEEDED"
    # then the days that depend on the edited day are STALE afterwards: all of them when the edit came after the
    # staging snapshot; those the run did not recompute when it came before (the run saw it)
    recomputed = {d for days in run["chunk_days"] for d in days}
    assert recomputed == {first_edit - timedelta(days=k) for k in range(3)}
    want = {late_edit - timedelta(days=k) for k in range(3)} - (recomputed if between == "validated" else set())
    assert {d for d, s in states(conn).items() if s == "STALE"} == want
    # and the next stale run recomputes them: the result is a full run's over the same data
    again = drive(conn, RANGE_START, RANGE_END, stale=True)
    assert {d for days in again["chunk_days"] for d in days} == want
    drive(twin, RANGE_START, RANGE_END, chunk_days=7)
    assert table(conn) == table(twin) and rejections(conn) == rejections(twin)
    assert set(states(conn).values()) == {"FRESH"}


def test_redriven_chunks_take_the_fingerprints_of_the_redrive_snapshot(conn, twin):
    # given a stale run whose chunk starting on a given day fails, and an edit on that chunk's days afterwards
    populate(conn, twin, seed_value=9, visits=800)
    edited = RANGE_START + timedelta(days=40)
    late_owners([edited - timedelta(days=2), edited - timedelta(days=1)], conn, twin)  # they reach its daytime
    drive(conn, RANGE_START, RANGE_END, chunk_days=7)
    drive(twin, RANGE_START, RANGE_END, chunk_days=7)
    cancel_daytime(edited, 2, conn, twin)
    failing = edited  # in 2-day chunks: edited-2..edited-1 and edited..edited
    failed = drive(conn, RANGE_START, RANGE_END, stale=True, chunk_days=2, fault_days=frozenset({failing}))
    assert failed["status"] == "FAILED"
    assert {d for d, s in states(conn).items() if s == "STALE"} == {edited}
    cancel_daytime(edited, 2, conn, twin)  # upstream edits the failed chunk's day again before the redrive
    # when the run is redriven
    redriven = redrive(conn, failed["run_id"])
    # then the redriven days are fresh from the redrive's snapshot; the days the first staging computed, which pair
    # with the edited day, are stale (the second edit came after their snapshot)
    assert redriven["status"] == "SUCCEEDED", redriven["error"]
    assert {d for d, s in states(conn).items() if s == "STALE"} == set(days_between(edited - timedelta(days=2),
                                                                                     edited - timedelta(days=1)))
    # and the next stale run brings the output to a full run's
    assert drive(conn, RANGE_START, RANGE_END, stale=True)["chunk_days"] == [days_between(edited - timedelta(days=2),
                                                                                          edited - timedelta(days=1))]
    assert set(states(conn).values()) == {"FRESH"}
    drive(twin, RANGE_START, RANGE_END, chunk_days=7)
    assert table(conn) == table(twin) and rejections(conn) == rejections(twin)


def test_a_stale_chunk_computes_only_its_own_days_and_is_redriven_as_it_was_planned(conn, twin):
    # given a full run, then daytime edits on two days ten days apart, each with the days before it that its owners
    # reach: stale days with ten unselected ones between them, in one chunk of at most 7 days
    populate(conn, twin, seed_value=9, visits=800)
    first, second = RANGE_START + timedelta(days=20), RANGE_START + timedelta(days=30)
    late_owners([first - timedelta(days=2), first - timedelta(days=1), second - timedelta(days=2),
                 second - timedelta(days=1)], conn, twin)
    drive(conn, RANGE_START, RANGE_END, chunk_days=7)
    drive(twin, RANGE_START, RANGE_END, chunk_days=7)
    earlier = {d.date: d.run_id for d in freshness.day_states(conn, RANGE_START, RANGE_END)}
    cancel_daytime(first, 2, conn, twin)
    cancel_daytime(second, 2, conn, twin)
    stale = sorted(d for d, s in states(conn).items() if s == "STALE")
    assert first in stale and second in stale and len(stale) <= 7
    # when a stale run plans them and its chunk fails, then the run is redriven
    failed = drive(conn, RANGE_START, RANGE_END, stale=True, chunk_days=7, fault_days=frozenset({stale[0]}))
    assert failed["status"] == "FAILED" and failed["chunk_days"] == [stale]
    redriven = redrive(conn, failed["run_id"])
    # then the redrive computed exactly the chunk's days: the days between them keep the run that computed them
    assert redriven["status"] == "SUCCEEDED", redriven["error"]
    after = {d.date: d.run_id for d in freshness.day_states(conn, RANGE_START, RANGE_END)}
    assert {d for d in after if after[d] != earlier[d]} == set(stale)
    assert set(states(conn).values()) == {"FRESH"}
    # and the output is a full run's: no conflict of a day between them was resolved or rewritten
    drive(twin, RANGE_START, RANGE_END, chunk_days=7)
    assert table(conn) == table(twin) and rejections(conn) == rejections(twin)
    assert_matches_oracle(conn, RANGE_START, RANGE_END)


# Two overlapping visits of a caregiver at two agencies, dated on the range's last day d and the next, and how they
# move so that the pair still conflicts but is dated past the range: (the pair, the move, the days STALE after it,
# the visit then cancelled, the day whose change makes d STALE).
MOVED_PAIRS = {
    # ten days back, out of the range (visit 1 started in the daytime of d, part 2; visit 2 at 00:30 of the next,
    # part 1): far outside the days d pairs with
    "out of the range": (
        [visit(1, RANGE_END.isoformat(), "23:00", "25:00", provider=1, caregiver=7),
         visit(2, RANGE_END.isoformat(), "24:30", "26:00", provider=2, caregiver=7,
               visit_date=(RANGE_END + timedelta(days=1)).isoformat())],
        "- 10", set(days_between(RANGE_END - timedelta(days=2), RANGE_END)), 1, RANGE_END - timedelta(days=10)),
    # a day later: visit 1 (a late owner of d, 20:00 to 03:00) to d + 1, visit 2 (02:30 to 04:00 the next day, part
    # 2, which visit 1 reached) to d + 2: d has no owner left, so no late caregiver of d reaches either
    "past the late caregivers' reach": (
        [visit(1, RANGE_END.isoformat(), "20:00", "27:00", provider=1, caregiver=7),
         visit(2, RANGE_END.isoformat(), "26:30", "28:00", provider=2, caregiver=7,
               visit_date=(RANGE_END + timedelta(days=1)).isoformat())],
        "+ 1", {RANGE_END}, 2, RANGE_END + timedelta(days=2)),
}


@pytest.mark.parametrize("moved", list(MOVED_PAIRS))
def test_a_pair_moved_out_of_the_range_is_still_tracked_on_its_old_date(conn, twin, moved):
    pair, shift, stale_after_move, cancelled, cause_day = MOVED_PAIRS[moved]
    # given two overlapping visits of a caregiver at two agencies, dated on the range's last day and the next
    start = RANGE_END - timedelta(days=6)
    for c in (conn, twin):
        insert(c, *pair)
        drive(c, start, RANGE_END, chunk_days=7)
    assert table(conn)[(1, 2)][1] == RANGE_END
    # when both move (still overlapping, the pair now dated past the range), and a stale run covers the range
    for c in (conn, twin):
        with c.cursor() as cur:
            cur.execute(f"UPDATE analytics.visits SET visit_date = visit_date {shift}, scheduled_start = "  # test data
                        f"scheduled_start {shift} * interval '1 day', scheduled_end = scheduled_end {shift} * interval "
                        "'1 day'")
        c.commit()
    assert {d for d, s in states(conn, start, RANGE_END).items() if s == "STALE"} == stale_after_move
    drive(conn, start, RANGE_END, stale=True)
    drive(twin, start, RANGE_END, chunk_days=7)
    # then, like a full run, it leaves the pair ACTIVE on its old date (its new date is outside the range)
    assert table(conn) == table(twin) and table(conn)[(1, 2)][1::5] == (RANGE_END, "ACTIVE")
    assert set(states(conn, start, RANGE_END).values()) == {"FRESH"}
    # and an edit of a moved visit, outside what the old date pairs with (its far visits: every part of the day such a
    # visit lies on counts), makes that date STALE, and the next stale run resolves the pair as a full run does
    for c in (conn, twin):
        with c.cursor() as cur:
            cur.execute("UPDATE analytics.visits SET status = 'CANCELLED' WHERE visit_id = %s", (cancelled,))
        c.commit()
    days = {d.date: d for d in freshness.day_states(conn, start, RANGE_END)}
    assert {d for d, s in days.items() if s.state == "STALE"} == {RANGE_END}
    assert (days[RANGE_END].reason, days[RANGE_END].cause_day) == ("DEPENDENT", cause_day)
    drive(conn, start, RANGE_END, stale=True)
    drive(twin, start, RANGE_END, chunk_days=7)
    assert table(conn) == table(twin) and table(conn)[(1, 2)][-1] == "RESOLVED"


@pytest.mark.parametrize("savepoint", [False, True], ids=["in its transaction", "in a savepoint"])
def test_an_edit_by_a_transaction_already_running_when_staging_took_its_snapshot_is_caught(conn, other, twin,
                                                                                           savepoint):
    # given a full run, and upstream editing a daytime visit in a transaction that began (and wrote, so it has its
    # id) before the next run's staging took its snapshot, and commits after that run: its row version's xmin is
    # older than the snapshot's xmax, never older than its xmin (the check proves days unchanged by xmin, schema 13)
    populate(conn, twin, seed_value=14, visits=800)
    edited = RANGE_START + timedelta(days=25)
    drive(conn, RANGE_START, RANGE_END, chunk_days=7)
    with other.cursor() as cur:
        if savepoint:
            cur.execute("SAVEPOINT edit")
        cur.execute("UPDATE analytics.visits SET clock_out = coalesce(clock_out, scheduled_end) + interval '7 minutes' "
                    f"WHERE visit_id = (SELECT min(visit_id) FROM analytics.visits WHERE visit_date = %s AND {DAYTIME} "
                    "AND status <> 'CANCELLED')", (edited,))
        if savepoint:
            cur.execute("RELEASE SAVEPOINT edit")
    # when a full run stages and computes the range meanwhile (it does not see the edit), then the edit commits
    drive(conn, RANGE_START, RANGE_END, chunk_days=7)
    assert set(states(conn).values()) == {"FRESH"}
    other.commit()
    # then the edited day is STALE (its rows are as many as the staging read, but one is younger than its snapshot)
    assert states(conn)[edited] == "STALE"
    assert {d.date: d.reason for d in freshness.day_states(conn, RANGE_START, RANGE_END)}[edited] == "CHANGED"
    # and the next stale run leaves what a full run over the edited data leaves
    with twin.cursor() as cur:
        cur.execute("UPDATE analytics.visits SET clock_out = coalesce(clock_out, scheduled_end) + interval '7 minutes' "
                    f"WHERE visit_id = (SELECT min(visit_id) FROM analytics.visits WHERE visit_date = %s AND {DAYTIME} "
                    "AND status <> 'CANCELLED')", (edited,))
    twin.commit()
    drive(conn, RANGE_START, RANGE_END, stale=True)
    drive(twin, RANGE_START, RANGE_END, chunk_days=7)
    assert table(conn) == table(twin) and rejections(conn) == rejections(twin)


def test_a_snapshot_xmin_ahead_of_the_server_proves_nothing(conn):
    # given a full run, then its recorded snapshot xmin set ahead of the server's (a ledger restored onto a server
    # whose transaction ids restarted lower: every row would look older than it)
    populate(conn, seed_value=15, visits=600)
    edited = RANGE_START + timedelta(days=20)
    drive(conn, RANGE_START, RANGE_END, chunk_days=7)
    with conn.cursor() as cur:
        cur.execute("UPDATE etl.source_snapshots SET snapshot_xmin = "
                    "(pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000000)::text::xid8")
    conn.commit()
    # when a daytime visit of a day is moved 7 minutes (as many rows as recorded)
    with conn.cursor() as cur:
        cur.execute("UPDATE analytics.visits SET scheduled_start = scheduled_start + interval '7 minutes', "
                    "scheduled_end = scheduled_end + interval '7 minutes', clock_in = NULL, clock_out = NULL "
                    f"WHERE visit_id = (SELECT min(visit_id) FROM analytics.visits WHERE visit_date = %s AND {DAYTIME} "
                    "AND status <> 'CANCELLED')", (edited,))
    conn.commit()
    # then the check does not take the snapshot as proof: the day's hashes differ, and it is STALE
    assert states(conn)[edited] == "STALE"


@pytest.mark.parametrize("reader", [True, False], ids=["fingerprints read beside", "fingerprints read after"])
def test_an_edit_committed_during_staging_is_in_neither_the_staged_rows_nor_the_fingerprints(conn, other, twin,
                                                                                             monkeypatch, reader):
    # given a full run, and upstream committing an edit after staging took its snapshot but before the fingerprints
    # are read (the worst moment: under READ COMMITTED, or in a snapshot of its own, the fingerprints would see it
    # and the staged rows not), the read on a second connection beside the load or in the staging's own transaction
    populate(conn, twin, seed_value=12, visits=800)
    edited = RANGE_START + timedelta(days=25)
    late_owners([edited - timedelta(days=2), edited - timedelta(days=1)], conn, twin)  # they reach its daytime
    drive(conn, RANGE_START, RANGE_END, chunk_days=7)
    drive(twin, RANGE_START, RANGE_END, chunk_days=7)
    read = freshness.read_fingerprints

    def edit_then_read(c, days):
        cancel_daytime(edited, 4, other, twin)
        return read(c, days)

    monkeypatch.setattr(freshness, "read_fingerprints", edit_then_read)
    # when a full run stages the range meanwhile
    drive(conn, RANGE_START, RANGE_END, chunk_days=7, reader=reader)
    monkeypatch.undo()
    # then its fingerprints are those of the data it staged: the edited day and the days pairing with it are STALE
    assert {d for d, s in states(conn).items() if s == "STALE"} == set(days_between(edited - timedelta(days=2), edited))
    # and the next stale run brings the output to a full run's over the edited data
    drive(conn, RANGE_START, RANGE_END, stale=True)
    drive(twin, RANGE_START, RANGE_END, chunk_days=7)
    assert table(conn) == table(twin) and rejections(conn) == rejections(twin)


@pytest.mark.parametrize("sizing", [fixed_sizing(3, 10**9), fixed_sizing(31, 250),
                                    adaptive_sizing(Throughput(100.0, "test"), chunk_days=31, target_chunk_seconds=2,
                                                    worker_timeout_s=300, concurrency=4)])
def test_a_plan_of_selected_days_covers_exactly_them_in_chunks_that_own_only_them(sizing):
    # given a window with selected days in three runs (one of a single day), loads on every day
    start = date(2026, 10, 1)
    selected = {start + timedelta(days=d) for d in [*range(2, 9), 12, *range(20, 27)]}
    loads = {start + timedelta(days=d): 40 + 7 * d for d in range(30)}
    # when they are planned
    chunks = plan_window(start, start + timedelta(days=29), loads, sizing, selected=selected)
    # then every selected day is owned by exactly one chunk and no other day is; a chunk's range runs from its first
    # owned day to its last, the ranges in date order without overlaps
    owned = [d for c in chunks for d in c.computed_days()]
    assert owned == sorted(selected)
    assert all(c.owned is not None and (c.owned[0], c.owned[-1]) == (c.start, c.end) for c in chunks)
    assert all(a.end < b.start for a, b in itertools.pairwise(chunks))
    assert [c.chunk_id for c in chunks] == list(range(1, len(chunks) + 1))
    # and a chunk's estimate is the load of its owned days only, within the day limit
    assert all(c.estimated_rows == sum(loads[d] for d in c.computed_days()) for c in chunks)
    assert all(c.days <= sizing.chunk_days for c in chunks)


def test_scattered_selected_days_fill_the_concurrency_instead_of_a_chunk_per_stretch():
    # given three stretches of two selected days, far apart (edits spread over a horizon), equal loads, and an
    # adaptive sizing for two chunks at once whose cap holds them all
    start = date(2026, 6, 1)
    selected = {start + timedelta(days=d) for d in (21, 22, 43, 44, 65, 66)}
    loads = {start + timedelta(days=d): 10_000 for d in range(90)}
    sizing = adaptive_sizing(Throughput(1_000_000.0, "test"), chunk_days=31, target_chunk_seconds=2,
                             worker_timeout_s=300, concurrency=2)
    # when they are planned
    chunks = plan_window(start, start + timedelta(days=89), loads, sizing, selected=selected)
    # then they make two chunks of three days (one round of two workers), not three chunks of two (two rounds)
    assert [c.computed_days() for c in chunks] == [sorted(selected)[:3], sorted(selected)[3:]]
    assert [c.estimated_rows for c in chunks] == [30_000, 30_000]


def test_a_plan_of_no_selected_days_has_no_chunks():
    assert plan_window(date(2026, 10, 1), date(2026, 10, 30), {}, fixed_sizing(3, 10), selected=set()) == []


def test_a_heartbeat_between_the_staging_snapshot_and_its_lock_costs_a_retry_not_the_run(conn, other, monkeypatch):
    # given a run, and its driver's heartbeat committing just after the staging transaction took its snapshot
    populate(conn, seed_value=13, visits=300)
    begin = freshness.begin_snapshot
    beats = []

    def snapshot_then_heartbeat(c):
        begin(c)
        if not beats:
            with c.cursor() as cur:
                cur.execute("SELECT 1 FROM analytics.visits LIMIT 1")  # the snapshot is taken here
            ledger.touch_run(other, run_id)  # another session updates the run row and commits
            beats.append(1)

    run = pipeline.validate_config({"request": {"trigger": "test", "start_date": RANGE_START.isoformat(),
                                                "end_date": RANGE_END.isoformat()},
                                    "execution_name": "heartbeat-race"}, conn, SETTINGS)
    run_id = run["run_id"]
    monkeypatch.setattr(freshness, "begin_snapshot", snapshot_then_heartbeat)
    # when StageVisits runs
    staged = pipeline.stage({"run": run}, conn)
    # then the first snapshot lost to the heartbeat and the second staged the window
    assert beats == [1] and staged["staged_rows"] > 0
    assert ledger.get_run(conn, run_id)["staged_rows"] == staged["staged_rows"]
    conn.rollback()


def test_a_stale_staging_reads_of_a_partner_day_only_the_visits_that_can_pair_with_its_owners():
    # given owner days 10-11 and 20 of a month
    days = [date(2026, 10, 10), date(2026, 10, 11), date(2026, 10, 20)]
    # then their staging reads the owner days whole, and each partner day up to the last owner day before it plus
    # 3 days 2 h (an owner ends before d + 3; its partners start at most 2 h later) when nothing else is known
    bound = [(date(2026, 10, 10), None), (date(2026, 10, 11), None),
             *[(date(2026, 10, 11 + k), datetime(2026, 10, 14, 2)) for k in range(1, 5)],
             (date(2026, 10, 20), None),
             *[(date(2026, 10, 20 + k), datetime(2026, 10, 23, 2)) for k in range(1, 5)]]
    assert freshness.staging_cutoffs(days) == bound
    # and, given the latest end of each owner day's visits, up to the latest end of the owner days before it plus
    # 2 h (10-12 to 10-14 follow both 10-10 and 10-11; 10-15 only 10-11), never past the bound (10-21 on)
    last_ends = {date(2026, 10, 10): datetime(2026, 10, 11, 23, 30), date(2026, 10, 11): datetime(2026, 10, 12, 9),
                 date(2026, 10, 20): datetime(2026, 10, 23, 1)}
    assert freshness.staging_cutoffs(days, last_ends) == [
        (date(2026, 10, 10), None), (date(2026, 10, 11), None),
        *[(date(2026, 10, 11 + k), datetime(2026, 10, 12, 11)) for k in range(1, 5)],
        (date(2026, 10, 20), None),
        *[(date(2026, 10, 20 + k), datetime(2026, 10, 23, 2)) for k in range(1, 5)]]
    assert freshness.staging_cutoffs([date(2026, 10, 10)], {date(2026, 10, 10): datetime(2026, 10, 11, 23, 30)}) == [
        (date(2026, 10, 10), None), *[(date(2026, 10, 10 + k), datetime(2026, 10, 12, 1, 30)) for k in range(1, 5)]]
    # and an owner day without a visit that can be eligible leaves the bound
    assert tasks.partner_cutoff([date(2026, 10, 10)], {}) == datetime(2026, 10, 13, 2)
    # and a partner day read up to a cutoff before the day that precedes it holds no visit that can be eligible (one
    # starts no earlier than that day), so it is not read at all: here 10-14 and 10-15 after 10-12 11:00
    assert [d for d, until in freshness.staging_cutoffs(days, last_ends) if tasks.can_hold_partner(d, until)] == [
        date(2026, 10, 10), date(2026, 10, 11), date(2026, 10, 12), date(2026, 10, 13),
        *[date(2026, 10, 20 + k) for k in range(5)]]
    assert tasks.can_hold_partner(date(2026, 10, 13), datetime(2026, 10, 12))
    assert not tasks.can_hold_partner(date(2026, 10, 13), datetime(2026, 10, 11, 23, 59, 59))


def _reach_population(owner_day: date) -> list[Any]:
    """A caregiver's owner visit on ``owner_day`` (21:00 to 20:00 the next day, the latest end of that day) and
    visits dated after it: one overlapping it, one starting 2 h 10 min after it ends 69 miles away, one a minute later,
    and one dated 3 days later at 01:59 (within the bound for any data, past this owner's reach)."""
    d = owner_day.isoformat()
    after = [(owner_day + timedelta(days=k)).isoformat() for k in range(4)]
    far = (41.0, -74.0)  # 69 miles north of the factories' default point: a 120-minute gap is a TRAVEL conflict
    return [visit(1, d, "21:00", "44:00", provider=1, caregiver=7),
            visit(2, d, "43:30", "44:30", provider=2, caregiver=7, visit_date=after[1]),
            visit(3, d, "46:10", "47:00", provider=3, caregiver=7, at=far, visit_date=after[1]),
            visit(4, d, "46:11", "47:00", provider=3, caregiver=7, at=far, visit_date=after[1]),
            visit(5, d, "73:59", "74:30", provider=4, caregiver=7, visit_date=after[3])]


def _owner_ends_later(*conns: psycopg2.extensions.connection) -> None:
    """The owner of :func:`_reach_population` ends 10 minutes later, at 20:10."""
    for c in conns:
        with c.cursor() as cur:
            cur.execute("UPDATE analytics.visits SET scheduled_end = scheduled_end + interval '10 minutes' "
                        "WHERE visit_id = 1")
        c.commit()


def _staged_during(step: Callable[[], T]) -> tuple[T, set[int]]:
    """What ``step`` returned, and the visits its staging staged (seen inside the staging transaction)."""
    record, staged = freshness.record_fingerprints, set()

    def look(c: psycopg2.extensions.connection, run_id: int, days: Any, rows: Any = None) -> None:
        with c.cursor() as cur:
            cur.execute("SELECT visit_id FROM etl.staged_visits WHERE run_id = %s", (run_id,))
            staged.update(r[0] for r in cur.fetchall())
        record(c, run_id, days, rows)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(freshness, "record_fingerprints", look)
        return step(), staged


def test_a_stale_run_stages_the_partner_visits_its_owners_can_reach_and_no_others(conn, twin):
    # given the owner visit and its later visits, computed by a full run
    owner_day = RANGE_START + timedelta(days=20)
    for c in (conn, twin):
        insert(c, *_reach_population(owner_day))
        drive(c, RANGE_START, RANGE_END, chunk_days=7)
    assert (1, 3) not in table(conn)  # a 130-minute gap: no conflict yet
    # when the owner's end moves 10 minutes later (to 20:10) and a stale run recomputes its day (the days before
    # have no owner to reach it)
    _owner_ends_later(conn, twin)
    run, staged = _staged_during(lambda: drive(conn, RANGE_START, RANGE_END, stale=True))
    # then of the later days it staged the visits starting by the owner's new end plus 2 h (22:10, included) and
    # none after (22:11, or 01:59 three days later), and the result is a full run's, with the new 120-minute pair
    assert {d for days in run["chunk_days"] for d in days} == {owner_day}
    assert staged == {1, 2, 3}
    drive(twin, RANGE_START, RANGE_END, chunk_days=7)
    assert table(conn) == table(twin) and rejections(conn) == rejections(twin)
    assert {(1, 2), (1, 3)} <= set(table(conn)) and (1, 4) not in table(conn)


def test_a_plain_run_reads_the_days_after_its_window_up_to_its_owners_reach(conn):
    # given the owner visit on the window's last day and its later visits, and an ineligible visit on that day that
    # ends days later (it must not widen the reach)
    owner_day = RANGE_START + timedelta(days=20)
    insert(conn, *_reach_population(owner_day),
           visit(6, owner_day.isoformat(), "10:00", "90:00", provider=5, caregiver=8))  # 80 h: DURATION_OVER_24H
    _owner_ends_later(conn)  # at 20:10: visit 3 starts 120 minutes later
    # when a plain run computes the window ending on the owner's day
    _, staged = _staged_during(lambda: drive(conn, owner_day - timedelta(days=6), owner_day, chunk_days=7))
    # then of the days after the window it staged only the visits starting by the owner's end plus 2 h (the
    # 120-minute TRAVEL partner included), and the map is the oracle's
    assert staged == {1, 2, 3}
    assert (1, 3) in table(conn) and (1, 4) not in table(conn)
    visits = oracle.load_visits(conn)
    assert oracle.actual(conn, owner_day - timedelta(days=6), owner_day) == oracle.expected(
        visits, owner_day - timedelta(days=6), owner_day)[0]


def test_of_a_partner_day_a_staging_stages_only_the_visits_of_caregivers_whose_late_owners_reach_them(conn, twin):
    # given the owner visit and its later visits, and another caregiver's: an owner that ends at 20:00 (too early to
    # reach anything the next day), a visit the next day within the day's cutoff, and one dated the next day that
    # starts before its date begins (such early visits are kept whoever their caregiver)
    owner_day = RANGE_START + timedelta(days=20)
    d, next_day = owner_day.isoformat(), (owner_day + timedelta(days=1)).isoformat()
    others = [visit(10, d, "18:00", "20:00", provider=6, caregiver=8),
              visit(8, d, "43:00", "43:30", provider=5, caregiver=8, visit_date=next_day),
              visit(9, d, "23:30", "23:50", provider=5, caregiver=8, visit_date=next_day)]
    for c in (conn, twin):
        insert(c, *_reach_population(owner_day), *others)
        drive(c, RANGE_START, RANGE_END, chunk_days=7)
    # when the owner ends 10 minutes later and a stale run recomputes its day (the days before have no owner)
    _owner_ends_later(conn, twin)
    run, staged = _staged_during(lambda: drive(conn, RANGE_START, RANGE_END, stale=True))
    # then of the next day it staged caregiver 7's visits up to its owner's end plus 2 h, caregiver 8's early visit and
    # not its other one (no owner of caregiver 8 ends late enough), and the result is a full run's
    assert {d for days in run["chunk_days"] for d in days} == {owner_day}
    assert staged == {1, 2, 3, 9, 10}
    drive(twin, RANGE_START, RANGE_END, chunk_days=7)
    assert table(conn) == table(twin) and rejections(conn) == rejections(twin)
    assert_matches_oracle(conn, RANGE_START, RANGE_END)


def test_a_plain_run_stages_the_visits_of_an_active_pair_that_moved_past_its_window_whatever_their_reach(conn):
    # given two overlapping visits of a caregiver at two agencies, dated on the window's last day and the next: the
    # pair is ACTIVE on the last day
    start, last, next_day = RANGE_END - timedelta(days=6), RANGE_END.isoformat(), (RANGE_END + timedelta(days=1))
    insert(conn, visit(1, last, "23:00", "25:00", provider=1, caregiver=7),
           visit(2, last, "24:30", "26:00", provider=2, caregiver=7, visit_date=next_day.isoformat()))
    drive(conn, start, RANGE_END, chunk_days=7)
    assert table(conn)[(1, 2)][1::5] == (RANGE_END, "ACTIVE")
    # when the first moves to the next day (its times kept): the pair, still overlapping, now belongs to that day
    with conn.cursor() as cur:
        cur.execute("UPDATE analytics.visits SET visit_date = %s WHERE visit_id = 1", (next_day,))
    conn.commit()
    _, staged = _staged_during(lambda: drive(conn, start, RANGE_END, chunk_days=7))
    # then the window's run stages both, although no owner of the caregiver is left in the window to reach the second
    # (it starts after midnight): the pair is evaluated, still conflicts, and stays ACTIVE on its old date until the
    # run that computes its new date rewrites it (docs/freshness.md)
    assert staged == {1, 2}
    assert table(conn)[(1, 2)][1::5] == (RANGE_END, "ACTIVE")
