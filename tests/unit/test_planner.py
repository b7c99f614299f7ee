"""The chunk planner's invariants, for any window and any load (property-based)."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunking.planner import days_between, plan_chunks

windows = st.tuples(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1)), st.integers(0, 400))
loads = st.lists(st.integers(0, 50_000), min_size=0, max_size=401)


@settings(max_examples=300, deadline=None)
@given(window=windows, load=loads, chunk_days=st.integers(1, 40), max_rows=st.integers(1, 120_000))
def test_plan_covers_the_window_exactly_within_both_limits(window, load, chunk_days, max_rows):
    start, length = window
    end = start + timedelta(days=length)
    rows_by_day = {day: load[i] for i, day in enumerate(days_between(start, end)) if i < len(load)}
    chunks = plan_chunks(start, end, rows_by_day, chunk_days=chunk_days, max_chunk_rows=max_rows)

    # contiguous, non-overlapping, covering the window exactly, numbered from 1
    assert chunks[0].start == start and chunks[-1].end == end
    for before, after in itertools.pairwise(chunks):
        assert after.start == before.end + timedelta(days=1)
    assert [c.chunk_id for c in chunks] == list(range(1, len(chunks) + 1))
    # at most chunk_days days each
    assert all(1 <= c.days <= chunk_days for c in chunks)
    # the estimate is the sum of the days' rows, and at most max_rows unless the chunk is a single day
    for c in chunks:
        assert c.estimated_rows == sum(rows_by_day.get(d, 0) for d in days_between(c.start, c.end))
        assert c.estimated_rows <= max_rows or c.days == 1
    # greedy: a chunk stops early only when the next day would break a limit
    for before, after in itertools.pairwise(chunks):
        next_day_rows = rows_by_day.get(after.start, 0)
        assert before.days == chunk_days or before.estimated_rows + next_day_rows > max_rows


def test_heavy_days_are_split_into_their_own_chunks():
    start = date(2026, 10, 1)
    loads = {start + timedelta(days=i): rows for i, rows in enumerate([100, 100, 900, 100, 100, 100, 100])}
    chunks = plan_chunks(start, start + timedelta(days=6), loads, chunk_days=7, max_chunk_rows=500)
    assert [(c.start.day, c.end.day, c.estimated_rows) for c in chunks] == [(1, 2, 200), (3, 3, 900), (4, 7, 400)]


def test_days_limit_alone_cuts_an_even_load():
    start = date(2026, 10, 1)
    chunks = plan_chunks(start, date(2026, 10, 30), {}, chunk_days=7, max_chunk_rows=10)
    assert [c.days for c in chunks] == [7, 7, 7, 7, 2]


def test_single_day_window_is_one_chunk():
    day = date(2026, 10, 1)
    assert [(c.start, c.end) for c in plan_chunks(day, day, {day: 5}, chunk_days=3, max_chunk_rows=1)] == [(day, day)]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"chunk_days": 0, "max_chunk_rows": 1}, "at least 1"),
    ({"chunk_days": 1, "max_chunk_rows": 0}, "at least 1"),
])
def test_bad_limits_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan_chunks(date(2026, 10, 1), date(2026, 10, 2), {}, **kwargs)


def test_inverted_window_is_refused():
    with pytest.raises(ValueError, match="before its start"):
        plan_chunks(date(2026, 10, 2), date(2026, 10, 1), {}, chunk_days=1, max_chunk_rows=1)
