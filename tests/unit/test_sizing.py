"""Adaptive chunk sizing from synthetic histories: throughput, caps, balance, splits and budgets."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunking.planner import (
    DEFAULT_ROWS_PER_SECOND,
    EVENTS_PER_CHUNK,
    Chunk,
    PlanTooLarge,
    Throughput,
    adaptive_sizing,
    budget,
    check_budget,
    days_between,
    fixed_sizing,
    measured_throughput,
    plan_window,
    split_chunk,
)

START = date(2026, 1, 1)


def _ok(rows, ms):
    return {"kind": "succeeded", "rows": rows, "elapsed_ms": ms}


def _timed_out(rows, ms):
    return {"kind": "timed_out", "rows": rows, "elapsed_ms": ms}


def test_no_history_uses_the_documented_default():
    measured = measured_throughput([])
    assert (measured.rows_per_second, measured.source) == (DEFAULT_ROWS_PER_SECOND, "default (no history)")


def test_throughput_is_the_median_of_recent_chunks_ignoring_tiny_ones():
    history = [_ok(100_000, 1_000), _ok(200_000, 1_000), _ok(300_000, 1_000), _ok(10, 1)]
    measured = measured_throughput(history)
    assert measured.rows_per_second == 200_000 and "median of 3" in measured.source


def test_a_timed_out_chunk_caps_the_throughput_below_what_it_managed():
    # 60,000 rows did not finish in 30 s: at most 2,000 rows/s; plan at half that
    history = [_ok(100_000, 1_000), _timed_out(60_000, 30_000)]
    measured = measured_throughput(history)
    assert measured.rows_per_second == 1_000 and "timed-out" in measured.source


def test_target_is_at_most_a_quarter_of_the_worker_timeout():
    sizing = adaptive_sizing(Throughput(10_000, "test"), chunk_days=31, target_chunk_seconds=600,
                             worker_timeout_s=300, concurrency=2)
    assert sizing.target_chunk_seconds == 75
    assert sizing.estimate_ms(sizing.max_chunk_rows) <= 75_000


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(100, 500_000), days=st.integers(1, 120), per_day=st.lists(st.integers(0, 400_000), max_size=120),
       concurrency=st.integers(1, 8), timeout=st.integers(30, 900))
def test_no_chunk_is_estimated_above_a_quarter_of_the_worker_timeout_unless_a_single_day(rate, days, per_day,
                                                                                         concurrency, timeout):
    end = START + timedelta(days=days - 1)
    loads = {d: per_day[i] for i, d in enumerate(days_between(START, end)) if i < len(per_day)}
    sizing = adaptive_sizing(Throughput(rate, "test"), chunk_days=31, target_chunk_seconds=120,
                             worker_timeout_s=timeout, concurrency=concurrency)
    chunks = plan_window(START, end, loads, sizing)
    assert chunks[0].start == START and chunks[-1].end == end
    for c in chunks:
        assert c.estimated_ms is not None
        assert c.estimated_ms <= timeout * 1000 / 4 or c.days == 1
    # the concurrency is used: at least that many chunks when that many days hold visits
    assert len(chunks) >= min(concurrency, sum(1 for n in loads.values() if n))
    assert [c.chunk_id for c in chunks] == list(range(1, len(chunks) + 1))


def test_light_days_merge_and_the_plan_is_balanced_for_the_concurrency():
    loads = {d: 6_000 for d in days_between(START, START + timedelta(days=29))}
    sizing = adaptive_sizing(Throughput(100_000, "test"), chunk_days=31, target_chunk_seconds=120,
                             worker_timeout_s=900, concurrency=2)
    chunks = plan_window(START, START + timedelta(days=29), loads, sizing)
    assert [c.days for c in chunks] == [15, 15]


def test_heavy_days_are_split_from_their_neighbours():
    days = days_between(START, START + timedelta(days=9))
    loads = dict.fromkeys(days, 1_000)
    loads[days[4]] = 2_000_000  # heavier than the 1.2M visits a chunk may hold (10k/s for 120 s)
    sizing = adaptive_sizing(Throughput(10_000, "test"), chunk_days=31, target_chunk_seconds=120,
                             worker_timeout_s=900, concurrency=1)
    chunks = plan_window(days[0], days[-1], loads, sizing)
    heavy = [c for c in chunks if c.start <= days[4] <= c.end]
    assert [(c.start, c.end) for c in heavy] == [(days[4], days[4])]
    assert len(chunks) == 3


def test_fixed_sizing_ignores_throughput():
    loads = dict.fromkeys(days_between(START, START + timedelta(days=9)), 100)
    chunks = plan_window(START, START + timedelta(days=9), loads, fixed_sizing(chunk_days=3, max_chunk_rows=10**6))
    assert [c.days for c in chunks] == [3, 3, 3, 1]


def test_split_cuts_a_chunk_where_its_rows_halve():
    days = days_between(START, START + timedelta(days=5))
    loads = dict(zip(days, [10, 10, 10, 70, 0, 0], strict=True))
    halves = split_chunk(Chunk(3, days[0], days[-1], 100), loads, first_chunk_id=9)
    assert [(c.chunk_id, c.start, c.end, c.estimated_rows) for c in halves] == [
        (9, days[0], days[2], 30), (10, days[3], days[5], 70)]
    single = Chunk(4, days[0], days[0], 10)
    assert split_chunk(single, loads, first_chunk_id=9) == [single]


def test_split_of_a_chunk_owning_some_days_cuts_between_them_and_ignores_the_others():
    # given a stale run's chunk owning two stretches of days, with heavy unowned days between them (partner rows)
    owned = (START, START + timedelta(days=1), START + timedelta(days=10), START + timedelta(days=11))
    loads = {**dict.fromkeys(days_between(START, owned[-1]), 1_000), **dict.fromkeys(owned, 10)}
    chunk = Chunk(3, owned[0], owned[-1], 40, owned=owned)
    # when it is split, then each half owns one stretch, its range at its owned ends, its rows theirs alone
    halves = split_chunk(chunk, loads, first_chunk_id=9)
    assert [(c.chunk_id, c.start, c.end, c.owned, c.estimated_rows, c.days) for c in halves] == [
        (9, owned[0], owned[1], owned[:2], 20, 2), (10, owned[2], owned[3], owned[2:], 20, 2)]
    one_day = Chunk(4, owned[2], owned[2], 10, owned=owned[2:3])
    assert split_chunk(one_day, loads, first_chunk_id=9) == [one_day]


def test_budget_counts_history_events_and_map_input():
    chunks = plan_window(START, START + timedelta(days=364), {}, fixed_sizing(chunk_days=1, max_chunk_rows=1))
    used = budget(chunks)
    assert used.chunks == 365 and used.history_events == 200 + EVENTS_PER_CHUNK * 365
    assert 365 * 60 < used.map_input_bytes < 365 * 80 and used.fits


def test_a_plan_over_the_execution_limits_is_refused_naming_them():
    many = [Chunk(i, START, START, 1) for i in range(1, 3_000)]
    with pytest.raises(PlanTooLarge, match=r"history events .* over what one execution allows"):
        check_budget(many)


def test_chunks_forced_by_the_day_cap_are_rounded_up_to_the_concurrency():
    # 90 days with a 31-day cap need 3 chunks; at concurrency 2 the third would run alone: plan 4
    loads = dict.fromkeys(days_between(START, START + timedelta(days=89)), 10_800)
    sizing = adaptive_sizing(Throughput(250_000, "test"), chunk_days=31, target_chunk_seconds=120,
                             worker_timeout_s=300, concurrency=2)
    chunks = plan_window(START, START + timedelta(days=89), loads, sizing)
    assert len(chunks) == 4 and max(c.days for c in chunks) <= 31
    # the largest chunk, which sets how long the run takes, is as small as four chunks allow
    assert max(c.estimated_rows for c in chunks) == math.ceil(90 / 4) * 10_800


def test_the_concurrency_is_used_when_the_heaviest_chunk_cannot_be_halved():
    # found by the property above: loads 0, 2, 1, 1 at concurrency 3 planned two chunks (days 1-2 and 3-4); the
    # heaviest cannot be cut into two loaded halves, the other can
    loads = {START + timedelta(days=i): n for i, n in enumerate([0, 2, 1, 1])}
    sizing = adaptive_sizing(Throughput(1_000, "test"), chunk_days=31, target_chunk_seconds=120,
                             worker_timeout_s=300, concurrency=3)
    chunks = plan_window(START, START + timedelta(days=3), loads, sizing)
    assert len(chunks) == 3 and [c.estimated_rows for c in chunks] == [2, 1, 1]
    assert [c.chunk_id for c in chunks] == [1, 2, 3]
