"""A realistic synthetic EVV population for ``analytics.visits`` (local use, tests and benchmarks).

Caregivers work one to three agencies (providers); most work days, some work nights (shifts crossing
midnight); a share of multi-agency caregivers are double-booked or have tight gaps between far-apart
patients (OVERLAP and TRAVEL conflicts). Clock times are jittered around the plan, sometimes missing,
sometimes wrong (clock-out before clock-in, a shift over 24 h, a clock-in on another day); some visits
are cancelled; some coordinates are missing or out of range. Deterministic for a given seed."""

from __future__ import annotations

import dataclasses
import io
import math
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta

from psycopg2 import sql

from chunking import db
from chunking.db import Connection
from chunking.errors import InputError

CENTER = (40.75, -73.95)  # a metro area; patients live within ~40 miles of it
RADIUS_MILES = 40.0
VISITS_PER_CAREGIVER_DAY = 2.2


@dataclasses.dataclass(frozen=True)
class Patient:
    patient_id: int
    provider_id: int
    lat: float
    lon: float


@dataclasses.dataclass(frozen=True)
class Caregiver:
    caregiver_id: int
    providers: tuple[int, ...]
    night_shift: bool
    tight_schedule: bool  # double-booked or rushed between agencies now and then


def generate(visits: int, start: date, days: int, seed: int = 7, first_id: int = 1,
             caregiver_count: int | None = None) -> Iterator[tuple[object, ...]]:
    """Yield ``visits`` rows of analytics.visits, dated from ``start`` over ``days`` days, by ``caregiver_count``
    caregivers (default: as many as work about 2.2 visits a day)."""
    rng = random.Random(seed)
    n_caregivers = caregiver_count or max(1, round(visits / (days * VISITS_PER_CAREGIVER_DAY)))
    n_providers = max(3, n_caregivers // 60)
    patients = [_patient(rng, pid, rng.randint(1, n_providers)) for pid in range(1, n_caregivers * 3 + 1)]
    by_provider: dict[int, list[Patient]] = {}
    for p in patients:
        by_provider.setdefault(p.provider_id, []).append(p)
    for provider in range(1, n_providers + 1):  # every agency has patients
        by_provider.setdefault(provider, [_patient(rng, len(patients) + provider, provider)])
    caregivers = [_caregiver(rng, cid, n_providers) for cid in range(1, n_caregivers + 1)]

    visit_id = first_id
    produced = 0
    per_day, extra = divmod(visits, days)
    for offset in range(days):
        day = start + timedelta(days=offset)
        quota = per_day + (1 if offset < extra else 0)
        rng.shuffle(caregivers)
        index = 0
        while quota > 0:
            caregiver = caregivers[index % len(caregivers)]
            index += 1
            count = min(quota, rng.choice((1, 2, 2, 2, 3, 3, 4)))
            for row in _day_of(rng, caregiver, day, count, by_provider):
                yield (visit_id, *row)
                visit_id += 1
                produced += 1
            quota -= count
    assert produced == visits


def _patient(rng: random.Random, patient_id: int, provider_id: int) -> Patient:
    distance = RADIUS_MILES * math.sqrt(rng.random())
    angle = rng.uniform(0, 2 * math.pi)
    lat = CENTER[0] + distance * math.cos(angle) / 69.0
    lon = CENTER[1] + distance * math.sin(angle) / (69.0 * math.cos(math.radians(CENTER[0])))
    return Patient(patient_id, provider_id, lat, lon)


def _caregiver(rng: random.Random, caregiver_id: int, n_providers: int) -> Caregiver:
    k = rng.choices((1, 2, 3), weights=(70, 25, 5))[0]
    providers = tuple(rng.sample(range(1, n_providers + 1), min(k, n_providers)))
    return Caregiver(caregiver_id, providers, night_shift=rng.random() < 0.08,
                     tight_schedule=len(providers) > 1 and rng.random() < 0.35)


def _day_of(rng: random.Random, cg: Caregiver, day: date, count: int,
            by_provider: dict[int, list[Patient]]) -> Iterator[tuple[object, ...]]:
    midnight = datetime(day.year, day.month, day.day)
    clock = midnight + (timedelta(hours=22) if cg.night_shift else timedelta(minutes=rng.randint(6 * 60, 10 * 60)))
    for i in range(count):
        provider = cg.providers[i % len(cg.providers)] if cg.tight_schedule else rng.choice(cg.providers)
        patient = rng.choice(by_provider[provider])
        minutes = rng.choice((480, 600)) if cg.night_shift and i == 0 else rng.choice((60, 90, 120, 120, 180, 240))
        sched_start = clock
        sched_end = sched_start + timedelta(minutes=minutes)
        if cg.tight_schedule and rng.random() < 0.3:
            clock = sched_end - timedelta(minutes=rng.randint(10, 45))  # double-booked: next one overlaps
        elif cg.tight_schedule:
            clock = sched_end + timedelta(minutes=rng.randint(0, 40))  # rushed between agencies
        else:
            clock = sched_end + timedelta(minutes=rng.randint(30, 120))
        yield (cg.caregiver_id, provider, patient.patient_id, day, sched_start, sched_end,
               *_actuals(rng, sched_start, sched_end, patient))


def _actuals(rng: random.Random, start: datetime, end: datetime, patient: Patient) -> tuple[object, ...]:
    """clock_in, clock_out, lat, lon, status: mostly faithful, sometimes missing or wrong."""
    roll = rng.random()
    if roll < 0.05:
        status = "CANCELLED"
    elif roll < 0.17:
        return (None, None, None, None, "SCHEDULED")  # not (yet) clocked: the plan stands
    else:
        status = "COMPLETED"
    clock_in = start + timedelta(minutes=rng.randint(-10, 15), seconds=rng.randint(0, 59))
    clock_out: datetime | None = end + timedelta(minutes=rng.randint(-15, 20), seconds=rng.randint(0, 59))
    wrong = rng.random()
    if wrong < 0.005:
        clock_out = clock_in - timedelta(minutes=rng.randint(1, 90))  # NON_POSITIVE_DURATION
    elif wrong < 0.008:
        clock_out = clock_in + timedelta(hours=rng.randint(25, 60))  # DURATION_OVER_24H
    elif wrong < 0.011:
        shift = timedelta(days=rng.choice((-3, -2, 2, 3)))
        clock_in, clock_out = clock_in + shift, end + shift  # START_OUTSIDE_VISIT_DATE
    elif wrong < 0.03:
        clock_out = None  # forgot to clock out: the plan's end stands
    gps = rng.random()
    if gps < 0.04:
        lat = lon = None
    elif gps < 0.045:
        lat, lon = rng.choice(((999.0, patient.lon), (patient.lat, 200.0), (-91.0, patient.lon)))
    else:
        lat = patient.lat + rng.gauss(0, 0.0015)
        lon = patient.lon + rng.gauss(0, 0.0015)
    return (clock_in, clock_out, lat, lon, status)


COLUMNS = ("visit_id", "caregiver_id", "provider_id", "patient_id", "visit_date", "scheduled_start",
           "scheduled_end", "clock_in", "clock_out", "clock_in_lat", "clock_in_lon", "status")


def _copy_text(rows: Iterator[tuple[object, ...]]) -> io.StringIO:
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join("\\N" if v is None else str(v) for v in row))
        buffer.write("\n")
    buffer.seek(0)
    return buffer


def seed_visits(conn: Connection, *, visits: int, start: date, days: int, seed: int = 7,
                mode: str = "refuse", caregiver_count: int | None = None) -> dict[str, int]:
    """Write a synthetic population with COPY. ``mode``: ``refuse`` (the table must be empty),
    ``replace`` (empty it first) or ``append`` (ids continue after the largest). Commits."""
    if visits < 1 or days < 1:
        raise InputError("--visits and --days must be at least 1")
    with db.write(conn), conn.cursor() as cur:
        cur.execute("SELECT count(*), coalesce(max(visit_id), 0) FROM analytics.visits")
        row = cur.fetchone()
        assert row is not None
        existing, max_id = int(row[0]), int(row[1])
        if existing and mode == "refuse":
            raise InputError(f"analytics.visits already holds {existing:,} visits: pass --replace to empty it "
                             "first or --append to add to it")
        if mode == "replace":
            cur.execute("TRUNCATE analytics.visits")
            max_id = 0
        first_id = max_id + 1 if mode == "append" else 1
        copy = sql.SQL("COPY analytics.visits ({}) FROM STDIN").format(
            sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
        cur.copy_expert(copy.as_string(cur), _copy_text(generate(visits, start, days, seed, first_id, caregiver_count)))
    with db.autocommit(conn), db.classified(), conn.cursor() as cur:
        cur.execute("ANALYZE analytics.visits")
    return {"visits": visits, "first_id": first_id, "replaced": existing if mode == "replace" else 0}
