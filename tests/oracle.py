"""An independent, deliberately naive implementation of the contract's rules in Python (all pairs of a
caregiver's visits), used to check the SQL on generated data."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from chunking.db import Connection

EARTH_RADIUS_MILES = 3958.8


def _round(value: Decimal | float) -> float:
    # Decimal(float) is the float's exact binary value (Decimal(str(x)) would round it to its shortest repr first)
    return float(Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _reason(v: dict[str, Any]) -> str | None:
    start, end = v["start"], v["end"]
    if None in (v["caregiver_id"], v["provider_id"], v["visit_date"], start, end):
        return "INVALID_RECORD"
    if end <= start:
        return "NON_POSITIVE_DURATION"
    if end == datetime.max or start == datetime.min or end - start > timedelta(hours=24):  # infinite ends
        return "DURATION_OVER_24H"
    if not (v["visit_date"] - timedelta(days=1) <= start.date() <= v["visit_date"] + timedelta(days=1)):
        return "START_OUTSIDE_VISIT_DATE"
    return None


def _located(v: dict[str, Any]) -> bool:
    lat, lon = v["clock_in_lat"], v["clock_in_lon"]
    return lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180


def _miles(a: dict[str, Any], b: dict[str, Any]) -> float:
    p1, p2 = math.radians(a["clock_in_lat"]), math.radians(b["clock_in_lat"])
    dlat = p2 - p1
    dlon = math.radians(b["clock_in_lon"] - a["clock_in_lon"])
    h = math.sin(dlat / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * math.asin(math.sqrt(min(1.0, h)))


def _minutes(delta: timedelta) -> Decimal:
    return Decimal(delta.days * 86400 + delta.seconds) / 60 + Decimal(delta.microseconds) / 60_000_000


def _conflict(a: dict[str, Any], b: dict[str, Any]) -> tuple[Any, ...] | None:
    """(type, overlap, gap, distance) when the two eligible visits conflict."""
    if a["start"] < b["end"] and b["start"] < a["end"]:
        return ("OVERLAP", _round(_minutes(min(a["end"], b["end"]) - max(a["start"], b["start"]))), None, None)
    if _located(a) and _located(b):
        gap = _minutes(max(a["start"], b["start"]) - min(a["end"], b["end"]))
        miles = _miles(a, b)
        if gap <= 120 and float(gap) < 2 * miles:
            return ("TRAVEL", None, _round(gap), _round(miles))
    return None


def load_visits(conn: Connection) -> list[dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute("SELECT visit_id, caregiver_id, provider_id, visit_date, scheduled_start, scheduled_end, "
                    "clock_in, clock_out, clock_in_lat, clock_in_lon, status FROM analytics.visits")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    conn.rollback()
    for v in rows:
        v["start"] = v["clock_in"] or v["scheduled_start"]
        v["end"] = v["clock_out"] or v["scheduled_end"]
    return rows


def expected(visits: list[dict[str, Any]], start: date, end: date) -> tuple[dict[tuple[int, int], tuple[Any, ...]],
                                                                            dict[int, str]]:
    """(conflicts dated in [start, end] keyed by pair -> (caregiver, date, type, overlap, gap, distance),
    rejected visits dated in [start, end] -> reason)."""
    rejected = {}
    by_caregiver: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for v in visits:
        if v["status"] == "CANCELLED":
            continue
        reason = _reason(v)
        if reason:
            if v["visit_date"] is not None and start <= v["visit_date"] <= end:
                rejected[v["visit_id"]] = reason
            continue
        by_caregiver[v["caregiver_id"]].append(v)

    found = {}
    for caregiver, mine in by_caregiver.items():
        # a caregiver's visits are few: the quadratic loop is the point (nothing clever to share a bug with)
        for i, a in enumerate(mine):
            for b in mine[i + 1:]:
                day = min(a["visit_date"], b["visit_date"])
                if a["provider_id"] != b["provider_id"] and start <= day <= end:
                    pair = (a, b) if a["visit_id"] < b["visit_id"] else (b, a)
                    figures = _conflict(*pair)
                    if figures:
                        found[(pair[0]["visit_id"], pair[1]["visit_id"])] = (caregiver, day, *figures)
    return found, rejected


def actual(conn: Connection, start: date, end: date) -> dict[tuple[int, int], tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute("SELECT visit_id, conflict_visit_id, caregiver_id, conflict_date, conflict_type, "
                    "overlap_minutes, gap_minutes, distance_miles FROM conflict.conflict_visit_maps "
                    "WHERE status = 'ACTIVE' AND conflict_date BETWEEN %s AND %s", (start, end))
        rows = cur.fetchall()
    conn.rollback()
    return {(r[0], r[1]): (r[2], r[3], r[4], *(None if x is None else float(x) for x in r[5:])) for r in rows}
