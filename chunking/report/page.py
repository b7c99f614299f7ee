"""The report's pages from Jinja2 templates (``chunking/templates/``, autoescape on) and the stylesheet
``report.css`` inlined, so each page is one self-contained file: no script, nothing fetched, charts inline SVG."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from importlib import resources

import jinja2
from markupsafe import Markup

from chunking.freshness import explain
from chunking.report import fmt, geometry
from chunking.report.model import COUNTS, Chunk, FreshnessDay, ReportData, Run
from chunking.wording import counted

PROG = "etl-pipeline"
CHUNK_STATUS_COLORS = {"SUCCEEDED": "#2f9e5b", "FAILED": "#d43d3d", "RETRYING": "#d98a1c", "RUNNING": "#3b7ddd",
                       "PENDING": "#9aa1ab", "SUPERSEDED": "#c3c8cf", "ABANDONED": "#7b6a58",
                       "STOPPED": "#d98a1c"}
COUNT_COLORS = {"inserted": "#3b7ddd", "updated": "#d98a1c", "resolved": "#2f9e5b", "reopened": "#c2417a",
                "unchanged": "#c3c8cf"}
REASONS = {
    "NON_POSITIVE_DURATION": "ends at or before it starts",
    "DURATION_OVER_24H": "lasts more than 24 hours",
    "START_OUTSIDE_VISIT_DATE": "starts more than a day from its visit date",
}
FRESHNESS = {  # state: colour, mark, meaning
    "FRESH": ("#2f9e5b", "✓", "computed from its current source"),
    "STALE": ("#d98a1c", "!", "its source changed since it was computed, or a day it depends on did"),
    "NEVER": ("#c3c8cf", "·", "never computed"),
}


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("chunking", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(counted=counted, num=fmt.num, day=fmt.day, clock=fmt.clock, seconds=fmt.seconds, rate=fmt.rate,
                       duration=fmt.duration, clip=fmt.clip, shorten=fmt.shorten, f1=lambda v: f"{v:.1f}",
                       f2=lambda v: f"{v:.2f}")
    env.globals.update(STATES=geometry.STATES, COUNTS=COUNTS, COUNT_COLORS=COUNT_COLORS, REASONS=REASONS,
                       TYPE_COLORS=geometry.TYPE_COLORS, STALE_FILL=geometry.STALE_FILL, FRESHNESS=FRESHNESS,
                       CHUNK_STATUS_COLORS=CHUNK_STATUS_COLORS, darker=fmt.darker)
    return env


@functools.cache
def stylesheet() -> Markup:
    """``report.css``, trusted text of the package (it goes into <style> verbatim, where entities mean nothing)."""
    css = resources.files("chunking").joinpath("templates", "report.css").read_text(encoding="utf-8")
    if "</" in css:
        raise ValueError("report.css must not contain '</'")
    return Markup(css)


# --- the run report --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class NextStep:
    text: str
    command: str
    then: str = ""
    then_command: str = ""


def next_step(run: Run) -> NextStep | None:
    """What continues a run that did not finish: the exact command to type."""
    if run.status in ("FAILED", "STOPPED"):
        return NextStep(f"Redrive its {'failed' if run.status == 'FAILED' else 'unfinished'} chunks (the chunks that "
                        "succeeded are kept):",
                        f"{PROG} redrive --run-id {run.run_id}",
                        "To list what it would re-process first, changing nothing:",
                        f"{PROG} redrive --run-id {run.run_id} --dry-run")
    if run.status == "ABANDONED":
        local = " --local" if run.local else ""
        return NextStep("An abandoned run cannot be redriven. Run its window again as a new run:",
                        f"{PROG} run{local} --start {fmt.day(run.window_start)} --end {fmt.day(run.window_end)}")
    if run.status == "RUNNING":
        return NextStep("It is still running. Follow it:", f"{PROG} status --run-id {run.run_id}")
    return None


def outcome_sentence(data: ReportData) -> str:
    live = data.live_chunks
    bad = [c for c in live if c.status != "SUCCEEDED"]
    if not live:
        return {"RUNNING": "Staging and planning: no chunks yet.",
                "SUCCEEDED": "The window had nothing to process."}.get(
            data.run.status, "The run ended before it planned any chunk.")
    if not bad:
        return "Its one chunk succeeded." if len(live) == 1 else f"All {len(live)} chunks succeeded."
    named = ", ".join(f"chunk {c.chunk_id} ({fmt.day(c.chunk_start)}) {c.status}" for c in bad[:6])
    more = f" and {len(bad) - 6} more" if len(bad) > 6 else ""
    return f"{len(live) - len(bad)} of {len(live)} chunks succeeded; not succeeded: {named}{more}."


def facts(data: ReportData) -> list[tuple[str, str]]:
    run, live = data.run, data.live_chunks
    ok = sum(c.status == "SUCCEEDED" for c in live)
    took = fmt.seconds(((run.finished_at or data.generated_at) - run.created_at).total_seconds())
    out = [
        ("window", f"{fmt.day(run.window_start)} .. {fmt.day(run.window_end)} ({counted(run.days, 'day')})"),
        ("trigger", run.trigger),
        ("execution", run.execution_name),
        ("started", f"{fmt.clock(run.created_at)} UTC"),
        ("finished", f"{fmt.clock(run.finished_at)} UTC" if run.finished_at else "not yet"),
        ("duration", took if run.finished_at else f"{took} so far"),
        ("chunks", f"{ok} of {len(live)} succeeded, {counted(len(data.attempts), 'attempt')}"),
        ("redrives", str(run.redrives)),
    ]
    return out


def never_attempted(data: ReportData) -> list[Chunk]:
    tried = {a.chunk_id for a in data.attempts}
    return [c for c in data.chunks if c.chunk_id not in tried]


@dataclasses.dataclass(frozen=True)
class RecomputedDay:
    """A day a stale run recomputed, and the change that made it stale."""

    day: date
    reason: str  # CHANGED (its own visits), DEPENDENT (a day its pairs reach), NEVER (never computed)
    cause_day: date | None
    previous_run_id: int | None

    @property
    def why(self) -> str:
        return explain(self.reason, self.cause_day)  # the one wording of why a day is recomputed


def render(data: ReportData, *, days: Sequence[FreshnessDay] | None = None,
           recomputed: Sequence[RecomputedDay] | None = None) -> str:
    """The whole page; with ``days``, a freshness calendar of those days after the run's sections; with
    ``recomputed``, the days a stale run recomputed and why."""
    run = data.run
    status_counts = {s: sum(a.state(run.status) == s for a in data.attempts) for s in geometry.STATES}
    stale = geometry.stale_days(data.chunks)
    shown_days = {d.conflict_date for d in data.conflicts_by_day}
    rates = [(c, c.throughput) for c in data.chunks]
    timed = [c for c, r in rates if r is not None]
    busy_ms = sum(c.duration_ms or 0 for c in timed)
    visits = sum(c.count("visits") for c in timed)
    throughput_summary = (f"{fmt.rate(visits * 1000 / busy_ms)} visits/s over {fmt.num(visits)} visits in "
                          f"{fmt.seconds(busy_ms / 1000)} of chunk work" if busy_ms else "no chunk has finished yet")
    failed = [a for a in data.attempts if a.state(run.status) not in ("SUCCEEDED", "DUPLICATE")]
    return _environment().get_template("report.html.j2").render(
        css=stylesheet(), data=data, run=run, title=f"Run {run.run_id} · {run.status} · "
        f"{fmt.day(run.window_start)}..{fmt.day(run.window_end)}",
        status_color=CHUNK_STATUS_COLORS.get(run.status, "#5b6470"),
        outcome=outcome_sentence(data), facts=facts(data), next=next_step(run), totals=data.totals,
        status_counts=status_counts, never=never_attempted(data),
        timelines=[geometry.layout_timeline(data, v) for v in geometry.VARIANTS] if data.attempts else [],
        chunks={c.chunk_id: c for c in data.chunks},
        top_visits=max((c.count("visits") for c in data.chunks), default=0) or 1,
        top_rows=max((c.rows for c in data.chunks), default=0) or 1,
        rates=rates, top_rate=max((r for _, r in rates if r is not None), default=0) or 1,
        throughput_summary=throughput_summary,
        rejected_total=sum(r.visits for r in data.rejections),
        top_rejected=max((r.visits for r in data.rejections), default=0) or 1,
        type_totals={"OVERLAP": sum(d.overlap for d in data.conflicts_by_day),
                     "TRAVEL": sum(d.travel for d in data.conflicts_by_day)},
        any_stale=bool(stale & shown_days),
        conflict_charts=[geometry.layout_conflicts(data.conflicts_by_day, stale, v) for v in geometry.VARIANTS]
        if data.conflicts_by_day else [],
        failed_attempts=failed, calendar=calendar(days) if days is not None else None,
        recomputed=list(recomputed or []),
        generated=fmt.clock(data.generated_at))


# --- freshness -------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CalendarCell:
    date: date
    day: FreshnessDay | None  # None: a day of the week outside the range

    @property
    def tooltip(self) -> str:
        d = self.day
        if d is None:
            return ""
        parts = [fmt.day(self.date), d.state]
        if d.run_id is not None:
            parts.append(f"run {d.run_id}")
        if d.computed_at is not None:
            parts.append(f"computed {fmt.clock(d.computed_at)} UTC")
        parts.append(d.reason or FRESHNESS.get(d.state, ("", "", ""))[2])
        return " · ".join(parts)

    @property
    def href(self) -> str:
        return f"run-{self.day.run_id}-report.html" if self.day is not None and self.day.run_id is not None else ""


@dataclasses.dataclass(frozen=True)
class Week:
    start: date
    month: str  # the names of the months that begin in this week ("Sep/Oct 2026"), else ""
    cells: list[CalendarCell]


@dataclasses.dataclass(frozen=True)
class Calendar:
    weeks: list[Week]
    size: int  # days in the calendar
    counts: dict[str, int]
    first: date | None
    last: date | None


def calendar(days: Sequence[FreshnessDay]) -> Calendar:
    """Weeks as rows (Monday first), one cell per day of the range, in date order."""
    by_date = {d.date: d for d in days}
    counts = {s: sum(d.state == s for d in days) for s in FRESHNESS}
    counts |= {d.state: counts.get(d.state, 0) + 1 for d in days if d.state not in FRESHNESS}
    if not by_date:
        return Calendar([], 0, counts, None, None)
    first, last = min(by_date), max(by_date)
    weeks = []
    monday = first - timedelta(days=first.weekday())
    seen: set[tuple[int, int]] = set()
    while monday <= last:
        cells = [CalendarCell(monday + timedelta(days=i), by_date.get(monday + timedelta(days=i))) for i in range(7)]
        inside = [c.date for c in cells if c.day is not None]
        new = []
        for d in inside:
            if (d.year, d.month) not in seen:
                seen.add((d.year, d.month))
                new.append(d)
        month = "/".join(d.strftime("%b") for d in new) + (f" {new[-1].year}" if new else "")
        weeks.append(Week(monday, month, cells))
        monday += timedelta(days=7)
    return Calendar(weeks, len(by_date), counts, first, last)


def render_freshness(days: Sequence[FreshnessDay], *, title: str) -> str:
    """A page of its own: the calendar of ``days``, each linked to its run's report ``run-<id>-report.html``."""
    return _environment().get_template("freshness.html.j2").render(
        css=stylesheet(), title=title, calendar=calendar(days), generated=fmt.clock(datetime.now(UTC)))
