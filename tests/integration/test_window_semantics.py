"""What a run over a window leaves behind (SPEC.md "What a run over a window does"), on a real PostgreSQL:
inserts, updates, reopens and resolutions of exactly the affected rows, nothing written for unchanged
rows, nothing touched outside the window, rejected visits kept in sync, chunking not mattering."""

from __future__ import annotations

import pytest

from tests.factories import conflicts, insert, rejected, run_window, update, visit

W_START, W_END = "2026-10-05", "2026-10-07"


def _population(conn):
    insert(conn,
           # Oct 5: an OVERLAP (1,2) and a TRAVEL (3,4)
           visit(1, "2026-10-05", "09:00", "11:00", provider=1), visit(2, "2026-10-05", "10:00", "12:00", provider=2),
           visit(3, "2026-10-05", "13:00", "14:00", provider=1, caregiver=2, at=(40.0, -74.0)),
           visit(4, "2026-10-05", "14:30", "15:30", provider=2, caregiver=2, at=(40.3, -74.0)),
           # Oct 6: an OVERLAP (5,6)
           visit(5, "2026-10-06", "09:00", "11:00", provider=1, caregiver=3),
           visit(6, "2026-10-06", "10:30", "12:00", provider=2, caregiver=3),
           # Oct 7: an OVERLAP (7,8)
           visit(7, "2026-10-07", "09:00", "10:00", provider=1, caregiver=4),
           visit(8, "2026-10-07", "09:30", "10:30", provider=2, caregiver=4),
           # Oct 3, outside the window: an OVERLAP (9,10)
           visit(9, "2026-10-03", "09:00", "11:00", provider=1, caregiver=5),
           visit(10, "2026-10-03", "10:00", "12:00", provider=2, caregiver=5),
           # a rejected visit inside the window and one outside it
           visit(11, "2026-10-06", "10:00", "09:00", provider=1, caregiver=6),
           visit(12, "2026-10-03", "10:00", "09:00", provider=1, caregiver=6))


def _snapshot(conn):
    return {k: (v["status"], v["conflict_type"], v["overlap_minutes"], v["gap_minutes"], v["distance_miles"],
                str(v["conflict_date"]), v["updated_at"], v["last_changed_run_id"])
            for k, v in conflicts(conn, status=None).items()}


@pytest.mark.parametrize("chunk_days", [1, 2, 366])
def test_rerun_over_unchanged_data_writes_nothing(conn, chunk_days):
    # given a first run over a wider window
    _population(conn)
    run_window(conn, "2026-10-03", W_END)
    before = _snapshot(conn)
    # when the same data is run again, however it is chunked
    run = run_window(conn, "2026-10-03", W_END, chunk_days=chunk_days)
    # then no row is written: updated_at and last_changed_run_id stay as they were
    assert _snapshot(conn) == before
    assert (run["inserted"], run["updated"], run["resolved"], run["reopened"], run["unchanged"]) == (0, 0, 0, 0, 5)


def test_source_edits_resolve_update_and_reopen_exactly_the_affected_rows(conn):
    _population(conn)
    first = run_window(conn, "2026-10-03", W_END)
    assert first["inserted"] == 5
    before = _snapshot(conn)

    # when, in the source: (1,2) loses its conflict (visit 2 cancelled), (3,4) changes figures (visit 4
    # now starts 15:00), (7,8) becomes ineligible (visit 8 clocks out before it clocks in), and (9,10),
    # outside the window, loses its conflict too
    update(conn, 2, status="CANCELLED")
    update(conn, 4, scheduled_start="2026-10-05 14:35", scheduled_end="2026-10-05 15:35")
    update(conn, 8, clock_in="2026-10-07 09:30", clock_out="2026-10-07 09:00")
    update(conn, 10, status="CANCELLED")
    second = run_window(conn, W_START, W_END, chunk_days=1)

    after = _snapshot(conn)
    # then (1,2) and (7,8) are RESOLVED keeping their last figures, (3,4) is updated, (5,6) untouched,
    # and (9,10), dated outside the window, is not touched although it no longer conflicts
    assert after[(1, 2)][:6] == ("RESOLVED", *before[(1, 2)][1:6])
    assert after[(7, 8)][:6] == ("RESOLVED", *before[(7, 8)][1:6])
    assert after[(3, 4)][:6] == ("ACTIVE", "TRAVEL", None, 35.0, 20.73, "2026-10-05")
    assert after[(3, 4)][7] == after[(1, 2)][7] == second["run_id"]
    assert after[(5, 6)] == before[(5, 6)]
    assert after[(9, 10)] == before[(9, 10)]
    assert (second["inserted"], second["updated"], second["resolved"], second["reopened"], second["unchanged"]) \
        == (0, 1, 2, 0, 1)
    resolved = conflicts(conn, status="RESOLVED")
    assert resolved[(1, 2)]["resolved_at"] is not None
    assert rejected(conn) == {8: "NON_POSITIVE_DURATION", 11: "NON_POSITIVE_DURATION", 12: "NON_POSITIVE_DURATION"}

    # when visit 2 is reinstated and visit 8 fixed
    update(conn, 2, status="COMPLETED")
    update(conn, 8, clock_in=None, clock_out=None)
    third = run_window(conn, W_START, W_END, chunk_days=2)
    final = conflicts(conn, status=None)
    # then both pairs are reopened with their figures; visit 8 is no longer rejected, visit 12 (outside) is
    assert (third["reopened"], third["inserted"], third["resolved"]) == (2, 0, 0)
    for pair in ((1, 2), (7, 8)):
        assert (final[pair]["status"], final[pair]["resolved_at"], final[pair]["last_changed_run_id"]) == \
            ("ACTIVE", None, third["run_id"])
        assert final[pair]["first_detected_run_id"] == first["run_id"]
    assert rejected(conn) == {11: "NON_POSITIVE_DURATION", 12: "NON_POSITIVE_DURATION"}


def test_rejected_visits_outside_the_window_are_kept_and_stale_ones_inside_removed(conn):
    _population(conn)
    run_window(conn, "2026-10-03", W_END)
    assert set(rejected(conn)) == {11, 12}
    # when both rejected visits are fixed but only the window Oct 5-7 is run
    update(conn, 11, scheduled_end="2026-10-06 11:00")
    update(conn, 12, scheduled_end="2026-10-03 11:00")
    run_window(conn, W_START, W_END)
    # then the one inside the window is removed, the one outside is kept
    assert set(rejected(conn)) == {12}


def test_rejection_reason_change_is_recorded(conn):
    insert(conn, visit(1, "2026-10-05", "10:00", "09:00"))
    run_window(conn, W_START, W_END)
    update(conn, 1, scheduled_end="2026-10-07 10:00")
    run_window(conn, W_START, W_END)
    assert rejected(conn) == {1: "DURATION_OVER_24H"}


@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_pair_moving_to_another_chunk_is_updated_not_resolved(conn, order):
    # given a pair dated Oct 5 (its earlier visit is dated Oct 5)
    insert(conn, visit(1, "2026-10-05", "22:00", "26:00", provider=1),
           visit(2, "2026-10-06", "01:00", "03:00", provider=2))
    first = run_window(conn, W_START, W_END)
    assert str(conflicts(conn)[(1, 2)]["conflict_date"]) == "2026-10-05"
    # when visit 1 is moved a day later, so the pair now belongs to Oct 6 (another one-day chunk)
    update(conn, 1, visit_date="2026-10-06", scheduled_start="2026-10-06 00:30", scheduled_end="2026-10-06 02:00")
    second = run_window(conn, W_START, W_END, chunk_days=1, order=order)
    # then whichever chunk runs first, the pair is updated to its new date and stays ACTIVE
    row = conflicts(conn, status=None)[(1, 2)]
    assert (row["status"], str(row["conflict_date"]), row["overlap_minutes"]) == ("ACTIVE", "2026-10-06", 60.0)
    assert (second["updated"], second["resolved"]) == (1, 0)
    assert row["first_detected_run_id"] == first["run_id"]


def test_pair_moving_out_of_the_window_is_left_untouched(conn):
    # given a pair dated Oct 7
    insert(conn, visit(1, "2026-10-07", "09:00", "11:00", provider=1),
           visit(2, "2026-10-07", "10:00", "12:00", provider=2))
    run_window(conn, W_START, W_END)
    before = _snapshot(conn)
    # when both visits move to Oct 20, where they still conflict, and only Oct 5-7 is run
    for vid, start, end in ((1, "09:00", "11:00"), (2, "10:00", "12:00")):
        update(conn, vid, visit_date="2026-10-20", scheduled_start=f"2026-10-20 {start}",
               scheduled_end=f"2026-10-20 {end}")
    run = run_window(conn, W_START, W_END, chunk_days=1)
    # then the row is neither resolved nor rewritten: its pair still conflicts, on a day outside the window
    assert _snapshot(conn) == before
    assert run["resolved"] == 0
    # and a run over Oct 20 moves it there
    run_window(conn, "2026-10-20", "2026-10-20")
    assert str(conflicts(conn)[(1, 2)]["conflict_date"]) == "2026-10-20"


def test_pair_whose_caregiver_changes_is_resolved(conn):
    insert(conn, visit(1, "2026-10-05", "09:00", "11:00", provider=1),
           visit(2, "2026-10-05", "10:00", "12:00", provider=2))
    run_window(conn, W_START, W_END)
    update(conn, 2, caregiver_id=99)
    run_window(conn, W_START, W_END)
    assert conflicts(conn, status="RESOLVED").keys() == {(1, 2)}


def test_deleted_visit_resolves_its_pair(conn):
    insert(conn, visit(1, "2026-10-05", "09:00", "11:00", provider=1),
           visit(2, "2026-10-05", "10:00", "12:00", provider=2))
    run_window(conn, W_START, W_END)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM analytics.visits WHERE visit_id = 2")
    conn.commit()
    run = run_window(conn, W_START, W_END)
    assert run["resolved"] == 1 and conflicts(conn) == {}
