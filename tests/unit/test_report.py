"""The run report's pure rendering: escaping, the time axis, attempt states, chunks without attempts, the run's
own steps and redrives on the timeline, partial totals and the next command of a stopped run, labels that do
not collide, and the freshness calendar."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from chunking import report
from chunking.report import geometry as _geometry  # noqa: F401  (report.geometry below)
from chunking.report import page as _page  # noqa: F401

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


def test_an_abandoned_run_shows_the_sums_of_its_committed_chunks_as_partial_and_how_to_run_again():
    # given a run abandoned while running: its own totals were never written
    run = _run(status="ABANDONED", visits=None, inserted=None, updated=None, resolved=None, reopened=None,
               unchanged=None, rejected_rows=None, executor="local:host:42")
    chunks = [_chunk(1, 1, visits=40, inserted=3, unchanged=2), _chunk(2, 2, visits=60, inserted=4, resolved=2),
              _chunk(3, 3, status="FAILED", visits=None, inserted=None, updated=None, resolved=None, reopened=None,
                     unchanged=None)]
    page = report.render(_data(run, chunks, [_attempt(1, 1, 30, 40), _attempt(2, 1, 31, 41)]))
    # then each tile is the committed chunks' sum, said to be partial, never "-"
    values = dict(re.findall(r'data-total="(\w+)" data-value="(\d+)"', page))
    assert values == {"visits": "100", "inserted": "7", "updated": "0", "resolved": "3", "reopened": "0",
                      "unchanged": "3", "rejected": "1"}
    assert "partial: the sums of the 2 of 3 chunks that committed" in page
    assert '<div class="num">-</div>' not in page
    # and the next command is a new run over its window, locally as it ran
    assert 'data-next="etl-pipeline run --local --start 2026-10-01 --end 2026-10-02"' in page


def test_a_failed_run_names_its_redrive_command_and_a_succeeded_one_names_none():
    failed = report.render(_data(_run(status="FAILED", error="boom"), [_chunk(1, 1, status="FAILED")],
                                 [_attempt(1, 1, 30, 31, outcome="FAILED")]))
    assert 'data-next="etl-pipeline redrive --run-id 7"' in failed
    assert "<code class=\"cmd\">etl-pipeline redrive --run-id 7 --dry-run</code>" in failed
    assert "data-next=" not in report.render(_data(_run(), [_chunk(1, 1)], [_attempt(1, 1, 30, 40)]))
    assert report.next_step(report.Run.from_row(_run(status="SUCCEEDED"))) is None


def test_a_stopped_run_shows_partial_totals_and_the_redrive_that_continues_it():
    stopped = report.render(_data(_run(status="STOPPED", error="stopped by SIGTERM"),
                                  [_chunk(1, 1, visits=40, inserted=3), _chunk(2, 2, status="FAILED")],
                                  [_attempt(1, 1, 30, 31)]))
    assert 'data-next="etl-pipeline redrive --run-id 7"' in stopped
    assert "partial: the sums of the 1 of 2 chunks that committed; the run was stopped before the others did" \
        in stopped


def test_the_timeline_shows_the_run_steps_before_its_chunks_and_marks_each_redrive_with_its_execution():
    # given a run staged 20 s after it began, failed, and redriven seven hours later
    attempts = [_attempt(1, 1, 30, 90, outcome="FAILED", error="boom"),
                _attempt(1, 2, 7 * 3600 + 5, 7 * 3600 + 60, worker="chunk-worker-2")]
    run = _run(redrives=1, finished_at=T0 + timedelta(hours=7, seconds=70),
               staged_at=T0 + timedelta(hours=7, seconds=2))  # the redrive's own stage
    executions = [report.Execution("nightly-2026-10-08", "run", T0),
                  report.Execution("redrive-7-1-<b>", "redrive", T0 + timedelta(hours=7))]
    page = report.render(_data(run, [_chunk(1, 1, attempts=2)], attempts, executions))
    for variant in report.VARIANTS:
        svg = _svg(page, "timeline", variant.name)
        # then the first execution's steps run from its start to its first attempt, the redrive's split at staging
        assert re.findall(r'data-step="(\w+)"', svg) == ["prelude", "stage", "plan"]
        # and the redrive is marked once, named (escaped), after the night's attempt
        (mark,) = re.findall(r'<g class="mark redrive" data-mark="redrive" data-execution="([^"]*)">'
                             r'<title>([^<]*)</title><line x1="([\d.]+)"', svg)
        assert mark[0] == "redrive-7-1-&lt;b&gt;" and "redrive-7-1-&lt;b&gt;" in mark[1]
        night = re.search(r'data-outcome="FAILED"[^>]*>\s*<title>[^<]*</title><rect x="([\d.]+)" y="[\d.]+" '
                          r'width="([\d.]+)"', svg)
        assert night and float(mark[2]) > float(night[1]) + float(night[2])
    assert page.count('data-kind="redrive"') == 1


def _boxes(svg: str, cls: str) -> list[tuple[float, float, float, float]]:
    out = []
    for x, y, size, anchor, text in re.findall(rf'<text class="{cls}" x="([\d.-]+)" y="([\d.-]+)" font-size="([\d.]+)" '
                                              r'text-anchor="(\w+)">([^<]*)</text>', svg):
        box = report.geometry.Text(float(x), float(y), text, float(size), anchor=anchor).box
        out.append(box)
    return out


def test_conflict_value_labels_never_overlap_each_other_at_any_width():
    # given a month of busy days, one far above the rest
    days = [report.ConflictDay(date(2026, 10, d), 1_000 + (d * 397) % 2_000 + (9_000 if d == 9 else 0), d)
            for d in range(1, 32)]
    page = report.render(_data(_run(window_end=date(2026, 10, 31)), [_chunk(1, 1)], [_attempt(1, 1, 30, 40)],
                               days=days))
    shown = []
    for variant in report.VARIANTS:
        svg = _svg(page, "conflicts", variant.name)
        boxes = _boxes(svg, "value")
        assert boxes, variant  # the peak at least is labelled
        assert all(not report.geometry._overlaps(a, b, pad=0) for i, a in enumerate(boxes) for b in boxes[i + 1:])
        assert all(b[0] >= 0 and b[2] <= variant.width for b in boxes)
        ticks = _boxes(svg, "tick")
        assert all(not report.geometry._overlaps(a, b, pad=0) for i, a in enumerate(ticks) for b in ticks[i + 1:])
        shown.append(len(boxes))
    assert shown == sorted(shown, reverse=True) and shown[0] > shown[-1]  # fewer labels where there is less room


def test_chart_text_never_renders_under_10_px_and_the_css_shows_each_drawing_where_it_fits():
    page = report.render(_data(_run(), [_chunk(1, 1), _chunk(2, 2)], [_attempt(1, 1, 30, 40), _attempt(2, 1, 31, 90)]))
    sizes = {float(s) for s in re.findall(r'<text [^>]*font-size="([\d.]+)"', page)}
    assert sizes and min(sizes) * report.geometry.MIN_SCALE >= 10
    css = report.page.stylesheet()
    widths = [v.width for v in report.VARIANTS]
    for wider, narrower, v in zip([None, *widths], widths, report.VARIANTS, strict=False):
        low = f"min-width: {narrower * report.geometry.MIN_SCALE:.0f}px"
        if v is not report.VARIANTS[-1]:
            assert low in css and f".chart > svg.{v.name} {{ display:block; }}" in css
        if wider is not None:
            assert f"max-width: {wider * report.geometry.MIN_SCALE - 0.02:.2f}px" in css


@dataclasses.dataclass(frozen=True)
class Day:
    date: date
    state: str
    run_id: int | None = None
    computed_at: datetime | None = None
    reason: str | None = None


FRESH_DAYS = [Day(date(2026, 9, 29), "NEVER"),
              Day(date(2026, 9, 30), "FRESH", 3, T0, None),
              Day(date(2026, 10, 1), "STALE", 3, T0, "2 visits of this day changed since <run 3>"),
              *(Day(date(2026, 10, d), "FRESH", 4, T0 + timedelta(days=1)) for d in range(2, 13))]


def test_the_freshness_page_is_a_calendar_of_weeks_linking_each_day_to_its_run_report():
    page = report.render_freshness(FRESH_DAYS, title="Freshness <2026>")
    assert "<title>Freshness &lt;2026&gt;</title>" in page and "<script" not in page
    # one cell per day, coloured by state, in weeks that start on Monday
    cells = re.findall(r'class="cal-cell (\w+)" role="cell" data-date="([\d-]+)" data-state="(\w+)"', page)
    assert [c[1] for c in cells] == [d.date.isoformat() for d in FRESH_DAYS]
    assert all(c[0] == c[2].lower() for c in cells)
    weeks = re.findall(r'data-week="([\d-]+)"', page)
    assert weeks == ["2026-09-28", "2026-10-05", "2026-10-12"]
    assert all(date.fromisoformat(w).weekday() == 0 for w in weeks)
    # a day with a run links to that run's report; a day never computed links nowhere
    links = dict(re.findall(r'data-date="([\d-]+)" data-state="\w+" data-run-id="\d+" href="([^"]+)"', page))
    assert links["2026-10-01"] == "run-3-report.html" and links["2026-10-12"] == "run-4-report.html"
    assert "2026-09-29" not in links and len(links) == len(FRESH_DAYS) - 1
    assert set(re.findall(r'href="([^"]+)"', page)) == {"run-3-report.html", "run-4-report.html"}
    # the tooltip says why, escaped; the legend counts each state
    assert 'title="2026-10-01 · STALE · run 3 · computed 2026-10-08 02:30:00 UTC · 2 visits of this day changed ' \
           'since &lt;run 3&gt;"' in page
    assert re.search(r'data-legend="FRESH"[^>]*>.*?<b>12</b>', page, re.S)
    assert re.search(r'data-legend="STALE"[^>]*>.*?<b>1</b>', page, re.S)
    assert re.search(r'data-legend="NEVER"[^>]*>.*?<b>1</b>', page, re.S)
    assert re.findall(r'<span class="cal-month">([^<]*)</span>', page)[1:] == ["Sep/Oct 2026", "", ""]


def test_a_run_report_given_days_carries_their_calendar_and_one_without_has_none():
    data = _data(_run(), [_chunk(1, 1)], [_attempt(1, 1, 30, 40)])
    assert 'data-section="freshness"' in report.render(data, days=FRESH_DAYS)
    assert 'data-days="14"' in report.render(data, days=FRESH_DAYS)
    assert 'data-section="freshness"' not in report.render(data)


def test_a_stale_chunk_says_which_days_of_its_range_it_computed():
    # given a stale run's chunk owning two days ten days apart, and a failed one owning one day between them
    owned = [date(2026, 10, 1), date(2026, 10, 11)]
    page = report.render(_data(_run(status="FAILED", window_end=date(2026, 10, 12)),
                               [_chunk(1, 1, chunk_end=owned[-1], owned_days=owned),
                                _chunk(2, 12, status="FAILED", owned_days=[date(2026, 10, 12)])],
                               [_attempt(1, 1, 30, 40), _attempt(2, 1, 30, 41, outcome="FAILED", error="boom")]))
    # then the chunk table gives its range with the count and the list of its own days
    assert 'title="the days it computed: 2026-10-01, 2026-10-11">(2 days)</span>' in page
    # and a failed chunk leaves only its own days marked as not this run's on the conflicts chart, not its range
    assert report.geometry.stale_days(_data(_run(), [_chunk(1, 1, chunk_end=owned[-1], owned_days=owned,
                                                            status="FAILED")], []).chunks) == set(owned)
