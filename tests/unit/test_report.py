"""The run report's pure rendering: escaping, the time axis, attempt states, chunks without attempts, the run's
own steps and redrives on the timeline, partial totals and the next command of a stopped run, labels that do
not collide, and the freshness calendar."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from chunking import report

T0 = datetime(2026, 10, 8, 2, 30, tzinfo=UTC)


def _run(**overrides: Any) -> dict[str, Any]:
    run = {"run_id": 7, "execution_name": "nightly-2026-10-08", "trigger": "schedule", "status": "SUCCEEDED",
           "window_start": date(2026, 10, 1), "window_end": date(2026, 10, 2), "redrives": 0,
           "created_at": T0, "staged_at": T0 + timedelta(seconds=20), "finished_at": T0 + timedelta(minutes=5),
           "visits": 100, "inserted": 3, "updated": 0, "resolved": 1, "reopened": 0, "unchanged": 2,
           "rejected_rows": 1, "error": None}
    return {**run, **overrides}


def _chunk(chunk_id: int, day: int, **overrides: Any) -> dict[str, Any]:
    chunk = {"chunk_id": chunk_id, "chunk_start": date(2026, 10, day), "chunk_end": date(2026, 10, day),
             "status": "SUCCEEDED", "attempts": 1, "visits": 50, "inserted": 2, "updated": 0, "resolved": 1,
             "reopened": 0, "unchanged": 1, "duration_ms": 2_000, "last_error": None}
    return {**chunk, **overrides}


def _attempt(chunk_id: int, attempt: int, start_s: float, end_s: float | None, **overrides: Any) -> dict[str, Any]:
    row = {"chunk_id": chunk_id, "attempt": attempt, "worker": "chunk-worker-1",
           "started_at": T0 + timedelta(seconds=start_s),
           "finished_at": None if end_s is None else T0 + timedelta(seconds=end_s),
           "outcome": "SUCCEEDED" if end_s is not None else None, "error_type": None, "error": None}
    return {**row, **overrides}


def _data(run: dict[str, Any], chunks: list[dict[str, Any]], attempts: list[dict[str, Any]],
          executions: list[report.Execution] = (), days: list[report.ConflictDay] | None = None  # type: ignore[assignment]
          ) -> report.ReportData:
    if days is None:
        days = [report.ConflictDay(date(2026, 10, 1), overlap=2, travel=1),
                report.ConflictDay(date(2026, 10, 2), overlap=0, travel=0)]
    return report.ReportData(run=report.Run.from_row(run), chunks=[report.Chunk.from_row(c) for c in chunks],
                             attempts=[report.Attempt.from_row(a) for a in attempts],
                             rejections=[report.Rejection("DURATION_OVER_24H", 1)],
                             conflicts_by_day=days, executions=list(executions),
                             generated_at=T0 + timedelta(hours=8))


def _svg(page: str, chart: str, variant: str = "v1") -> str:
    """One drawing of a chart (each chart is drawn once per layout width; the page shows one)."""
    (found,) = re.findall(rf'<svg class="{chart} v {variant}".*?</svg>', page, re.S)
    return found


def test_text_from_the_database_is_escaped_everywhere():
    hostile = '<script>alert("x")</script>'
    page = report.render(_data(
        _run(status="FAILED", error=hostile, execution_name=hostile, trigger=hostile),
        [_chunk(1, 1, status="FAILED", last_error=hostile)],
        [_attempt(1, 1, 30, 31, outcome="FAILED", worker=hostile, error_type="TransientError", error=hostile)]))
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page  # markupsafe writes " as &#34;
    assert not re.search(r'data-worker="[^"]*<', page)


def test_a_redrive_hours_later_cuts_the_idle_gap_out_of_the_axis():
    # given a run that failed at night and was redriven seven hours later
    attempts = [_attempt(1, 1, 30, 90, outcome="FAILED", error="boom"), _attempt(2, 1, 35, 80),
                _attempt(1, 2, 7 * 3600, 7 * 3600 + 60, worker="chunk-worker-2")]
    run = _run(redrives=1, finished_at=T0 + timedelta(hours=7, seconds=70))
    page = _svg(report.render(_data(run, [_chunk(1, 1, attempts=2), _chunk(2, 2)], attempts)), "timeline")
    # then the axis has one break that names the idle time, and the night's bars are not squashed to slivers
    (gap,) = re.findall(r'data-gap-seconds="(\d+)"', page)
    assert 6.9 * 3600 < int(gap) < 7 * 3600
    widths = [float(w) for w in re.findall(r'<g class="attempt"[^>]*>.*?<rect [^>]*width="([\d.]+)"', page, re.S)]
    assert len(widths) == 3 and min(widths) > 100


def test_axis_maps_time_monotonically_inside_the_plot():
    axis = report.TimeAxis.fit([(0, 10), (20, 25), (40_000, 40_010)], origin=0, left=100, width=1000)
    xs = [axis.x(t) for t in (0, 5, 10, 20, 25, 40_000, 40_005, 40_010)]
    assert xs == sorted(xs) and xs[0] == 100 and abs(xs[-1] - 1100) < 1e-6
    assert len(axis.segments) == 2
    labels = [label for _, label in axis.ticks()]
    assert labels[0] == "0" and any(label.startswith("+11h") for label in labels)


def test_attempt_without_outcome_is_running_in_a_live_run_and_interrupted_in_an_ended_one():
    open_attempt = _attempt(1, 1, 30, None)
    live = report.render(_data(_run(status="RUNNING", finished_at=None), [_chunk(1, 1, status="RUNNING")],
                               [open_attempt]))
    ended = report.render(_data(_run(status="ABANDONED"), [_chunk(1, 1, status="FAILED")], [open_attempt]))
    assert 'data-outcome="RUNNING"' in live and 'data-mark="now"' in live
    assert 'data-outcome="INTERRUPTED"' in ended


def test_overlapping_attempts_of_one_lane_get_their_own_rows():
    # given two attempts with no worker recorded, at the same time
    attempts = [_attempt(1, 1, 30, 200, worker=None), _attempt(2, 1, 40, 210, worker=None)]
    page = _svg(report.render(_data(_run(), [_chunk(1, 1), _chunk(2, 2)], attempts)), "timeline")
    ys = re.findall(r'<g class="attempt"[^>]*>.*?<rect x="[\d.]+" y="([\d.]+)"', page, re.S)
    assert 'data-worker="unknown worker" data-attempts="2"' in page
    assert len(set(ys)) == 2


def test_chunks_never_attempted_are_named():
    page = report.render(_data(_run(status="FAILED"), [_chunk(1, 1), _chunk(2, 2, status="PENDING", attempts=0,
                                                                             visits=None, duration_ms=None)],
                               [_attempt(1, 1, 30, 40)]))
    assert 'data-never-attempted="2"' in page
    assert 'data-chunk="2" data-visits-per-second=""' in page
    assert 'data-date="2026-10-02" data-overlap="0" data-travel="0" data-recomputed="no"' in page
