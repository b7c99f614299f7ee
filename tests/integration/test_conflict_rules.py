"""Each rule of the contract (SPEC.md "Rules"), with expectations computed by hand, on a real PostgreSQL.

Distances used below (haversine, R = 3958.8 mi): 0.1 degree of latitude = 6.91 mi, 0.3 = 20.73 mi,
1.0 = 69.09 mi. A TRAVEL conflict needs a gap of at most 120 min and gap_minutes < 2 * distance_miles."""

from __future__ import annotations

import pytest

from tests.factories import chunk_rows, conflicts, insert, rejected, run_window, visit

DAY = "2026-10-05"
HOME = (40.0, -74.0)
NEAR = (40.1, -74.0)  # 6.91 mi from HOME
MID = (40.3, -74.0)  # 20.73 mi
FAR = (41.0, -74.0)  # 69.09 mi


def test_overlapping_visits_at_two_providers_conflict(conn):
    # given two visits of one caregiver at different agencies, overlapping 10:00-11:00
    insert(conn, visit(1, DAY, "09:00", "11:00", provider=1), visit(2, DAY, "10:00", "12:00", provider=2))
    # when a run covers their day
    run_window(conn, DAY, DAY)
    # then one OVERLAP of 60 minutes, dated that day, with no travel figures
    row = conflicts(conn)[(1, 2)]
    assert (row["conflict_type"], row["overlap_minutes"], row["gap_minutes"], row["distance_miles"]) == \
        ("OVERLAP", 60.0, None, None)
    assert (str(row["conflict_date"]), row["caregiver_id"], row["status"]) == (DAY, 1, "ACTIVE")
    assert row["resolved_at"] is None and row["first_detected_run_id"] == row["last_changed_run_id"] == 1


def test_same_provider_never_conflicts(conn):
    insert(conn, visit(1, DAY, "09:00", "11:00", provider=3), visit(2, DAY, "10:00", "12:00", provider=3))
    run_window(conn, DAY, DAY)
    assert conflicts(conn) == {}


def test_different_caregivers_never_conflict(conn):
    insert(conn, visit(1, DAY, "09:00", "11:00", caregiver=1, provider=1),
           visit(2, DAY, "10:00", "12:00", caregiver=2, provider=2))
    run_window(conn, DAY, DAY)
    assert conflicts(conn) == {}


@pytest.mark.parametrize(("gap_end", "partner_at", "expected"), [
    ("10:30", MID, ("TRAVEL", 30.0, 20.73)),   # 30 < 41.46
    ("10:41", MID, ("TRAVEL", 41.0, 20.73)),   # 41 < 41.46
    ("10:45", MID, None),                       # 45 >= 41.46: time enough to drive
    ("10:10", NEAR, ("TRAVEL", 10.0, 6.91)),   # 10 < 13.82
    ("10:15", NEAR, None),                      # 15 >= 13.82
    ("12:00", FAR, ("TRAVEL", 120.0, 69.09)),  # the 120-minute bound is inclusive
    ("12:01", FAR, None),                       # 121 > 120
])
def test_travel_conflict_when_gap_is_short_for_the_distance(conn, gap_end, partner_at, expected):
    # given a visit ending 10:00 at HOME and the next one starting after a gap somewhere else
    end_h, end_m = (int(x) for x in gap_end.split(":"))
    later = f"{end_h + 1:02d}:{end_m:02d}"
    insert(conn, visit(1, DAY, "09:00", "10:00", provider=1, at=HOME),
           visit(2, DAY, gap_end, later, provider=2, at=partner_at))
    run_window(conn, DAY, DAY)
    found = conflicts(conn).get((1, 2))
    if expected is None:
        assert found is None
    else:
        assert (found["conflict_type"], found["gap_minutes"], found["distance_miles"], found["overlap_minutes"]) \
            == (*expected, None)


def test_touching_intervals_do_not_overlap_but_can_be_travel(conn):
    # given back-to-back visits (half-open intervals touch at 10:00): same place, and 6.91 mi apart
    insert(conn, visit(1, DAY, "09:00", "10:00", provider=1, at=HOME),
           visit(2, DAY, "10:00", "11:00", provider=2, at=HOME),
           visit(3, DAY, "09:00", "10:00", caregiver=2, provider=1, at=HOME),
           visit(4, DAY, "10:00", "11:00", caregiver=2, provider=2, at=NEAR))
    run_window(conn, DAY, DAY)
    found = conflicts(conn)
    # then no OVERLAP anywhere; a zero gap is a TRAVEL conflict only when the places differ
    assert (1, 2) not in found
    assert (found[(3, 4)]["conflict_type"], found[(3, 4)]["gap_minutes"], found[(3, 4)]["distance_miles"]) == \
        ("TRAVEL", 0.0, 6.91)


def test_clock_times_override_the_plan(conn):
    # given plans that overlap, but clock times that do not (and vice versa)
    insert(conn,
           visit(1, DAY, "09:00", "11:00", provider=1, clock=("09:00", "10:00")),
           visit(2, DAY, "10:00", "12:00", provider=2, clock=("10:30", "12:00"), at=HOME),
           visit(3, DAY, "13:00", "14:00", provider=1, clock=("13:00", "15:00")),
           visit(4, DAY, "14:30", "16:00", provider=2, clock=("14:30", None)))
    run_window(conn, DAY, DAY)
    found = conflicts(conn)
    assert (1, 2) not in found  # clocked 09:00-10:00 and 10:30-12:00 at the same place
    # visit 3 clocked out at 15:00 (plan said 14:00); visit 4 has no clock-out, so its plan's end stands
    assert (found[(3, 4)]["conflict_type"], found[(3, 4)]["overlap_minutes"]) == ("OVERLAP", 30.0)


@pytest.mark.parametrize("where", [(None, -74.0), (40.0, None), (None, None), (95.0, -74.0), (40.0, 181.0),
                                   (-90.5, -74.0)])
def test_missing_or_invalid_coordinates_mean_no_location(conn, where):
    # given a tight gap that would be TRAVEL, and an overlap, where one visit has no usable location
    insert(conn, visit(1, DAY, "09:00", "10:00", provider=1, at=HOME),
           visit(2, DAY, "10:05", "11:00", provider=2, at=where),
           visit(3, DAY, "10:30", "11:30", provider=3, at=where))
    run_window(conn, DAY, DAY)
    found = conflicts(conn)
    assert (1, 2) not in found and (1, 3) not in found  # no TRAVEL without a location
    assert found[(2, 3)]["conflict_type"] == "OVERLAP"  # OVERLAP needs none
    assert found[(2, 3)]["overlap_minutes"] == 30.0


def test_coordinates_on_the_limits_are_usable(conn):
    insert(conn, visit(1, DAY, "09:00", "10:00", provider=1, at=(90.0, 180.0)),
           visit(2, DAY, "10:05", "11:00", provider=2, at=(-90.0, -180.0)))
    run_window(conn, DAY, DAY)
    assert conflicts(conn)[(1, 2)]["conflict_type"] == "TRAVEL"


def test_cancelled_visits_are_ignored_and_not_rejected(conn):
    insert(conn, visit(1, DAY, "09:00", "11:00", provider=1),
           visit(2, DAY, "10:00", "12:00", provider=2, status="CANCELLED"),
           visit(3, DAY, "10:00", "09:00", provider=2, status="CANCELLED"))  # bad, but cancelled
    run_window(conn, DAY, DAY)
    assert conflicts(conn) == {}
    assert rejected(conn) == {}


def test_scheduled_visits_take_part(conn):
    insert(conn, visit(1, DAY, "09:00", "11:00", provider=1, status="SCHEDULED"),
           visit(2, DAY, "10:00", "12:00", provider=2, status="SCHEDULED"))
    run_window(conn, DAY, DAY)
    assert (1, 2) in conflicts(conn)


def test_each_rejection_reason_in_the_contract_order(conn):
    # given visits that break the eligibility rules, each overlapping an eligible partner
    insert(conn,
           visit(1, DAY, "09:00", "17:00", provider=1),
           visit(2, DAY, "10:00", "10:00", provider=2),                              # end == start
           visit(3, DAY, "10:00", "09:00", provider=2),                              # end < start
           visit(4, DAY, "10:00", "34:01", provider=2),                              # 24 h 1 min
           visit(5, DAY, "10:00", "34:00", provider=2),                              # exactly 24 h: eligible
           visit(6, "2026-10-07", "10:00", "11:00", provider=2, visit_date=DAY),     # starts 2 days after its date
           visit(7, "2026-10-03", "10:00", "11:00", provider=2, visit_date=DAY),     # starts 2 days before
           visit(8, "2026-10-06", "10:00", "11:00", provider=2, visit_date=DAY),     # a day after: eligible
           visit(9, "2026-10-07", "10:00", "09:00", provider=2, visit_date=DAY),     # both: duration first
           visit(10, DAY, "10:00", "12:00", provider=2, clock=("11:00", "10:59")))   # clock times decide
    run_window(conn, DAY, DAY)
    assert rejected(conn) == {2: "NON_POSITIVE_DURATION", 3: "NON_POSITIVE_DURATION", 4: "DURATION_OVER_24H",
                              6: "START_OUTSIDE_VISIT_DATE", 7: "START_OUTSIDE_VISIT_DATE",
                              9: "NON_POSITIVE_DURATION", 10: "NON_POSITIVE_DURATION"}
    # and ineligible visits never take part in a conflict
    assert set(conflicts(conn)) == {(1, 5)}


def test_figures_are_rounded_to_two_decimals(conn):
    insert(conn, visit(1, DAY, "09:00", "10:00:20", provider=1), visit(2, DAY, "10:00", "11:00", provider=2))
    run_window(conn, DAY, DAY)
    assert conflicts(conn)[(1, 2)]["overlap_minutes"] == 0.33  # 20 s


def test_cross_midnight_pair_on_a_chunk_boundary_belongs_to_the_earlier_day(conn):
    # given a night shift dated Oct 5 (22:00 -> 06:00) and a visit dated Oct 6 from 05:00, at another agency
    insert(conn, visit(1, "2026-10-05", "22:00", "30:00", provider=1),
           visit(2, "2026-10-06", "05:00", "08:00", provider=2))
    # when the window is cut into one-day chunks, with the boundary between the two dates
    run = run_window(conn, "2026-10-05", "2026-10-06", chunk_days=1)
    # then the pair is dated Oct 5 and only the Oct 5 chunk wrote it
    row = conflicts(conn)[(1, 2)]
    assert (str(row["conflict_date"]), row["overlap_minutes"]) == ("2026-10-05", 60.0)
    by_start = {str(c["chunk_start"]): c["inserted"] for c in chunk_rows(conn, run["run_id"])}
    assert by_start == {"2026-10-05": 1, "2026-10-06": 0}


def test_partner_dated_days_after_the_chunk_is_found(conn):
    # given a visit dated Oct 5 that starts Oct 6 20:00 and lasts 22 h (eligible), and a partner dated
    # Oct 8 that started the evening before its date (Oct 7 17:00), overlapping it
    insert(conn, visit(1, "2026-10-06", "20:00", "42:00", provider=1, visit_date="2026-10-05"),
           visit(2, "2026-10-07", "17:00", "19:00", provider=2, visit_date="2026-10-08"))
    # when the window ends on Oct 5, three days before the partner's date
    run_window(conn, "2026-10-01", "2026-10-05", chunk_days=1)
    # then the pair is found, dated Oct 5
    row = conflicts(conn)[(1, 2)]
    assert (str(row["conflict_date"]), row["conflict_type"], row["overlap_minutes"]) == \
        ("2026-10-05", "OVERLAP", 60.0)  # Oct 7 17:00-18:00


def test_pair_owned_by_a_day_outside_the_window_is_not_written(conn):
    # given a pair whose earlier visit is dated the day before the window
    insert(conn, visit(1, "2026-09-30", "22:00", "26:00", provider=1),
           visit(2, "2026-10-01", "01:00", "03:00", provider=2))
    run_window(conn, "2026-10-01", "2026-10-03")
    assert conflicts(conn) == {}
    # when a run covers that day, it is found and dated Sep 30
    run_window(conn, "2026-09-30", "2026-09-30")
    assert str(conflicts(conn)[(1, 2)]["conflict_date"]) == "2026-09-30"


def test_visit_id_order_does_not_follow_date_order(conn):
    # given the later-dated visit with the smaller id
    insert(conn, visit(5, "2026-10-06", "01:00", "03:00", provider=2),
           visit(9, "2026-10-05", "23:00", "26:00", provider=1))
    run_window(conn, "2026-10-05", "2026-10-06", chunk_days=1)
    row = conflicts(conn)[(5, 9)]
    assert (str(row["conflict_date"]), row["overlap_minutes"]) == ("2026-10-05", 60.0)  # Oct 6 01:00-02:00


def test_three_way_overlap_gives_three_pairs(conn):
    insert(conn, visit(1, DAY, "09:00", "12:00", provider=1), visit(2, DAY, "10:00", "13:00", provider=2),
           visit(3, DAY, "11:00", "14:00", provider=3), visit(4, DAY, "11:30", "12:30", provider=1))
    run_window(conn, DAY, DAY)
    found = {k: v["overlap_minutes"] for k, v in conflicts(conn).items()}
    # (1, 4) share provider 1: no conflict
    assert found == {(1, 2): 120.0, (1, 3): 60.0, (2, 3): 120.0, (2, 4): 60.0, (3, 4): 60.0}
