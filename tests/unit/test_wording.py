"""Counts are written as people write them, in every message that counts something: "1 day", "3 days", never
"1 days" or "day(s)"."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest

from chunking import report
from chunking.console import Progress, make_console
from chunking.freshness import DayFreshness, calendar
from chunking.wording import counted
from tests.unit.test_report import _attempt, _chunk, _data, _run


@pytest.mark.parametrize(("n", "noun", "plural", "said"), [
    (0, "day", None, "0 days"), (1, "day", None, "1 day"), (2, "day", None, "2 days"),
    (12_004, "visit", None, "12,004 visits"), (1, "unfinished chunk", None, "1 unfinished chunk"),
    (3, "entry", "entries", "3 entries"), (1, "entry", "entries", "1 entry"),
])
def test_a_count_takes_its_noun_singular_for_exactly_one(n, noun, plural, said):
    assert counted(n, noun, plural) == said


def _day(day: int, state: str) -> DayFreshness:
    computed = datetime(2026, 10, 21, tzinfo=UTC)
    return DayFreshness(date(2026, 10, day), state, 1, computed, "CHANGED" if state == "STALE" else None)  # type: ignore[arg-type]


@pytest.mark.parametrize("stale", [1, 2])
def test_the_freshness_calendar_counts_the_days_a_stale_run_would_take(stale):
    text = calendar([_day(1, "FRESH"), *(_day(1 + i, "STALE") for i in range(1, stale + 1))])
    assert f"\n{stale} {'day' if stale == 1 else 'days'} a stale run would recompute:\n" in text
    assert "(s)" not in text


@pytest.mark.parametrize("chunks", [1, 3])
def test_the_progress_count_line_and_the_report_say_one_chunk_as_one(chunks):
    console = make_console(stderr=False, force_terminal=False, width=80)
    progress = Progress(console=console)
    live = [{"chunk_id": i, "chunk_start": date(2026, 10, i), "chunk_end": date(2026, 10, i), "status": "SUCCEEDED",
             "attempts": 1, "duration_ms": 10, "last_error": None} for i in range(1, chunks + 1)]
    with console.capture() as captured:
        progress.close(live)
    noun = "chunk" if chunks == 1 else "chunks"
    assert re.search(rf"Finished: {chunks} OK, 0 FAILED of {chunks} {noun} in ", captured.get())

    page = report.render(_data(_run(), [_chunk(i, i) for i in range(1, chunks + 1)],
                               [_attempt(i, 1, 30, 40) for i in range(1, chunks + 1)]))
    said = "Its one chunk succeeded." if chunks == 1 else f"All {chunks} chunks succeeded."
    assert said in page
    assert (f"<summary>All {chunks} attempts</summary>" if chunks > 1 else "<summary>1 attempt</summary>") in page
    assert "All 1 " not in page and "1 chunks" not in page and "1 attempts" not in page


def test_a_one_day_window_and_a_chunk_owning_one_day_say_one_day():
    page = report.render(_data(_run(window_end=date(2026, 10, 1)), [_chunk(1, 1, owned_days=[date(2026, 10, 1)])],
                               [_attempt(1, 1, 30, 40)]))
    assert "(1 day)" in page and "1 days" not in page
