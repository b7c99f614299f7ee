"""Figures are rounded to 2 decimals from the float's exact binary value, not from its 15-digit decimal cast."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunking import db


def exact(x: float) -> Decimal:
    return Decimal(x).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _round_in_sql(conn, values: list[float]) -> list[Decimal]:
    with conn.cursor() as cur:
        cur.execute("SELECT etl.round2_exact(x) FROM unnest(%s::double precision[]) WITH ORDINALITY AS t(x, i) "
                    "ORDER BY i", (values,))
        rows = [r[0] for r in cur.fetchall()]
    conn.rollback()
    return rows


BOUNDARIES = [25.674999999999998, 12.344999999999999, 40.004999999999995, 0.125, 2.675, 1.005, 0.005, 0.015,
              99.995, 1234.565, 0.0, 5e-324, 1e-9, 8191.995]


def test_values_next_to_a_half_cent_round_from_their_exact_value(conn):
    # the cast keeps 15 significant digits: 25.674999999999998 becomes 25.6750000000000 and rounds up to 25.68
    with conn.cursor() as cur:
        cur.execute("SELECT round(25.674999999999998::double precision::numeric, 2)")
        assert cur.fetchone()[0] == Decimal("25.68")
    conn.rollback()
    assert _round_in_sql(conn, BOUNDARIES) == [exact(x) for x in BOUNDARIES]
    assert exact(25.674999999999998) == Decimal("25.67")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False), min_size=1,
                max_size=50))
def test_any_figure_rounds_as_its_exact_value_does(database_url, values):
    conn = db.connect(database_url)
    try:
        assert _round_in_sql(conn, values) == [exact(x) for x in values]
    finally:
        conn.close()


@pytest.mark.parametrize("x", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_have_no_rounded_figure(conn, x):
    assert _round_in_sql(conn, [x]) == [None]
