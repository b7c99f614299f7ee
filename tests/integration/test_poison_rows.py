"""Poison rows never fail or skew a run: infinite timestamps, a NULL status, and rows that break the contract's
NOT NULL columns (an upstream table without the constraints) are classified by the contract's rules, in its
order; only CANCELLED visits are ignored; the run goes on and counts what it rejected."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import oracle
from tests.factories import D, conflicts, insert, rejected, run_window, visit

NULLABLE = ("caregiver_id", "provider_id", "visit_date", "scheduled_start", "scheduled_end", "status")


@pytest.fixture
def upstream_without_not_null(conn) -> Iterator[None]:
    """analytics.visits as an upstream that never declared the contract's NOT NULL columns."""
    with conn.cursor() as cur:
        for column in NULLABLE:
            cur.execute(f"ALTER TABLE analytics.visits ALTER COLUMN {column} DROP NOT NULL")  # test schema only
    conn.commit()
    yield
    with conn.cursor() as cur:
        cur.execute("TRUNCATE analytics.visits")
        for column in NULLABLE:
            cur.execute(f"ALTER TABLE analytics.visits ALTER COLUMN {column} SET NOT NULL")
    conn.commit()


def _set(conn, visit_id: int, assignments: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"UPDATE analytics.visits SET {assignments} WHERE visit_id = %s", (visit_id,))  # test data
    conn.commit()


@pytest.mark.parametrize(("assignments", "reason"), [
    ("clock_out = 'infinity'", "DURATION_OVER_24H"),          # an infinite end lasts more than 24 h
    ("clock_in = '-infinity'", "DURATION_OVER_24H"),          # so does an infinitely early start
    ("clock_in = 'infinity', clock_out = 'infinity'", "NON_POSITIVE_DURATION"),  # both infinite: end <= start
    ("clock_in = 'infinity'", "NON_POSITIVE_DURATION"),       # an infinite start with a finite end
    ("clock_in = '-infinity', clock_out = '-infinity'", "NON_POSITIVE_DURATION"),
    ("caregiver_id = NULL", "INVALID_RECORD"),
    ("provider_id = NULL", "INVALID_RECORD"),
    ("scheduled_start = NULL", "INVALID_RECORD"),              # no start after the coalesce
    ("scheduled_end = NULL, clock_out = NULL", "INVALID_RECORD"),
    ("caregiver_id = NULL, clock_out = 'infinity'", "INVALID_RECORD"),  # the contract's order: lacking first
])
def test_poison_row_is_rejected_with_its_reason_and_the_run_goes_on(conn, upstream_without_not_null,
                                                                     assignments, reason):
    # given a conflicting pair, and a third visit of the same caregiver turned into a poison row
    insert(conn, visit(1, "2026-10-05", "09:00", "11:00", provider=1), visit(2, "2026-10-05", "10:00", "12:00",
                                                                           provider=2),
           visit(3, "2026-10-05", "10:30", "11:30", provider=3))
    _set(conn, 3, assignments)
    # when a run covers the day
    run = run_window(conn, "2026-10-05", "2026-10-05")
    # then the poison row is rejected for its own reason, counted, and the real conflict stands alone
    assert rejected(conn) == {3: reason}
    assert set(conflicts(conn)) == {(1, 2)}
    assert run["rejected_rows"] == 1 and run["invalid_rows"] == (1 if reason == "INVALID_RECORD" else 0)


def test_a_null_status_is_not_cancelled(conn, upstream_without_not_null):
    insert(conn, visit(1, "2026-10-05", "09:00", "11:00", provider=1), visit(2, "2026-10-05", "10:00", "12:00",
                                                                           provider=2))
    _set(conn, 2, "status = NULL")
    run_window(conn, "2026-10-05", "2026-10-05")
    assert set(conflicts(conn)) == {(1, 2)}
    assert rejected(conn) == {}


def test_a_visit_without_a_visit_date_is_in_no_window_and_its_old_conflicts_resolve(conn, upstream_without_not_null):
    insert(conn, visit(1, "2026-10-05", "09:00", "11:00", provider=1), visit(2, "2026-10-05", "10:00", "12:00",
                                                                           provider=2))
    run_window(conn, "2026-10-05", "2026-10-05")
    assert set(conflicts(conn)) == {(1, 2)}
    _set(conn, 2, "visit_date = NULL")
    run_window(conn, "2026-10-05", "2026-10-05")
    assert conflicts(conn) == {} and set(conflicts(conn, "RESOLVED")) == {(1, 2)}
    assert rejected(conn) == {}  # rejections are per window, and it is in none


def test_poison_rows_among_many_leave_exactly_the_oracles_table(conn, upstream_without_not_null):
    from chunking import seed

    seed.seed_visits(conn, visits=1_500, start=D("2026-10-01"), days=5, seed=13)
    with conn.cursor() as cur:  # one in ten visits poisoned, five ways
        cur.execute("""UPDATE analytics.visits SET
                         clock_out = CASE WHEN visit_id % 50 = 0 THEN 'infinity' ELSE clock_out END,
                         clock_in = CASE WHEN visit_id % 50 = 10 THEN '-infinity'
                                         WHEN visit_id % 50 = 40 THEN NULL ELSE clock_in END,
                         status = CASE WHEN visit_id % 50 = 20 THEN NULL ELSE status END,
                         caregiver_id = CASE WHEN visit_id % 50 = 30 THEN NULL ELSE caregiver_id END,
                         scheduled_start = CASE WHEN visit_id % 50 = 40 THEN NULL ELSE scheduled_start END""")
    conn.commit()
    run_window(conn, "2026-10-01", "2026-10-05", chunk_days=2)
    want, want_rejected = oracle.expected(oracle.load_visits(conn), D("2026-10-01"), D("2026-10-05"))
    assert oracle.actual(conn, D("2026-10-01"), D("2026-10-05")) == want
    assert rejected(conn) == want_rejected
    assert "INVALID_RECORD" in want_rejected.values() and "DURATION_OVER_24H" in want_rejected.values()
