"""The report's charts as shapes: where every bar, tick, label and marker goes, in SVG user units.

Each chart is laid out once per :data:`VARIANTS` width; the page shows the one that fits its box (CSS
container queries in ``report.css``), so text is never drawn much smaller than its nominal size: at least
:data:`MIN_SCALE` of it. Label positions are computed here from estimated text widths
(:func:`chunking.report.fmt.text_px`) so that no two labels overlap."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import date, datetime

from chunking.report import fmt
from chunking.report.model import Attempt, Chunk, ConflictDay, ReportData


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    width: float


# The widths each chart is drawn at, widest first; a variant is shown while its box is at least MIN_SCALE of
# its width (the thresholds are written out in report.css: 1088, 748, 510 px).
VARIANTS = (Variant("v1", 1280), Variant("v2", 880), Variant("v3", 600), Variant("v4", 400))
MIN_SCALE = 0.85

# Font sizes in user units (set on each <text>, so the estimates here and the drawing agree). With
# MIN_SCALE they never render below 12 * 0.85 = 10.2 px.
TICK_FONT, LANE_FONT, BAR_FONT, OUT_FONT, MARK_FONT, TITLE_FONT, VALUE_FONT = 12, 13, 12, 12, 12, 12.5, 12

STATES = {
    "SUCCEEDED": ("#2f9e5b", "succeeded"),
    "FAILED": ("#d43d3d", "failed"),
    "DUPLICATE": ("#8b78d8", "duplicate delivery (changed nothing)"),
    "RUNNING": ("#3b7ddd", "still running"),
    "INTERRUPTED": ("#9aa1ab", "no outcome (its worker stopped)"),
}
STEP_COLORS = {"stage": "#5f6b7a", "plan": "#a3adb9", "prelude": "#7b8794"}
TYPE_COLORS = {"OVERLAP": "#d9553d", "TRAVEL": "#3b8fc4"}
STALE_FILL = "#fbd5d5"


@dataclasses.dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    size: float
    anchor: str = "middle"
    cls: str = "tick"

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom), estimated."""
        w = fmt.text_px(self.text, self.size, bold=self.cls in ("lane-label", "bar-label"))
        left = self.x - {"start": 0, "middle": w / 2, "end": w}[self.anchor]
        return left, self.y - self.size * 0.95, left + w, self.y + self.size * 0.25  # DejaVu's ascent, descent


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float], pad: float = 2) -> bool:
    return a[0] < b[2] + pad and b[0] < a[2] + pad and a[1] < b[3] + pad and b[1] < a[3] + pad


# --- time axis -------------------------------------------------------------------------------------------------

TICK_STEPS_S = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
                10800, 21600, 43200, 86400)
IDLE_GAP_MIN_S = 300.0
MIN_BAR_PX = 4.0


@dataclasses.dataclass(frozen=True)
class TimeAxis:
    """Epoch seconds to x, with long idle gaps (a redrive hours after the night) cut out of the axis.

    Ticks are labelled as offsets from ``origin`` (the run's start)."""

    segments: tuple[tuple[float, float], ...]
    origin: float
    left: float
    width: float
    break_px: float = 40.0

    @classmethod
    def fit(cls, spans: Sequence[tuple[float, float]], origin: float, left: float, width: float,
            break_px: float = 40.0) -> TimeAxis:
        ordered = sorted((s, max(s, e)) for s, e in [*spans, (origin, origin)])
        cut_over = max(IDLE_GAP_MIN_S, (ordered[-1][1] - ordered[0][0]) / 4)
        segments = [list(ordered[0])]
        for start, end in ordered[1:]:
            if start - segments[-1][1] > cut_over:
                segments.append([start, end])
            else:
                segments[-1][1] = max(segments[-1][1], end)
        return cls(tuple((s, e) for s, e in segments), origin, left, width, break_px)

    @property
    def _spans(self) -> list[float]:
        """Each segment's length for scaling (a lone point still gets a little room)."""
        total = sum(e - s for s, e in self.segments) or 1.0
        return [max(e - s, total * 0.04, 0.001) for s, e in self.segments]

    @property
    def _scale(self) -> float:
        usable = self.width - self.break_px * (len(self.segments) - 1)
        return usable / sum(self._spans)

    def segment_left(self, index: int) -> float:
        return self.left + sum(self._spans[:index]) * self._scale + index * self.break_px

    def x(self, t: float) -> float:
        for i, (s, e) in enumerate(self.segments):
            if t <= e or i == len(self.segments) - 1:
                return self.segment_left(i) + (min(max(t, s), s + self._spans[i]) - s) * self._scale
        raise AssertionError("unreachable")  # pragma: no cover

    def ticks(self, min_spacing_px: float = 84, font: float = TICK_FONT) -> list[tuple[float, str]]:
        """(x, label) per tick, at round offsets from the origin. Labels never touch: a segment's first tick
        (after a break) wins over the tick before it, any other tick gives way to the one before."""
        out: list[tuple[float, str]] = []
        step = next((st for st in TICK_STEPS_S if st * self._scale >= min_spacing_px), TICK_STEPS_S[-1])
        for i, (s, _) in enumerate(self.segments):
            k = math.ceil((s - self.origin) / step - 1e-9)
            first = True
            while (offset := k * step) <= s - self.origin + self._spans[i] + 1e-9:
                x, label = self.x(self.origin + offset), fmt.offset_label(offset, step)
                touching = bool(out) and x - out[-1][0] < (fmt.text_px(out[-1][1], font)
                                                           + fmt.text_px(label, font)) / 2 + 10
                if touching and first and i:
                    out.pop()
                if not touching or (first and i):
                    out.append((x, label))
                first, k = False, k + 1
        return out

    def breaks(self) -> list[tuple[float, float]]:
        """(x of the break's middle, idle seconds cut out) per gap."""
        return [(self.segment_left(i + 1) - self.break_px / 2, self.segments[i + 1][0] - self.segments[i][1])
                for i in range(len(self.segments) - 1)]


# --- timeline --------------------------------------------------------------------------------------------------

ROW_H, BAR_H, LABEL_ZONE = 42, 22, 15  # a lane row: room for a label above a narrow bar, then the bar
LANE_HEAD = 20  # narrow variants: the lane's name on its own line above its rows
MARK_ROW_H = 17


@dataclasses.dataclass(frozen=True)
class Bar:
    """One span on the timeline: an attempt of a chunk, or a step of the run before its chunks."""

    key: str  # "attempt" or "step"
    x: float
    y: float
    w: float
    fill: str
    stroke: str
    label: Text
    title: str
    state: str = ""
    attempt: Attempt | None = None
    step: str = ""


@dataclasses.dataclass(frozen=True)
class Lane:
    name: str
    kind: str  # "worker" or "steps"
    y: float
    height: float
    label: Text
    title: str
    bars: list[Bar]

    @property
    def attempts(self) -> int:
        return sum(b.attempt is not None for b in self.bars)


@dataclasses.dataclass(frozen=True)
class Mark:
    kind: str  # "run start", "run end", "now", "redrive"
    x: float
    y1: float
    y2: float
    label: Text
    title: str
    execution: str = ""


@dataclasses.dataclass(frozen=True)
class AxisBreak:
    x: float
    gap_seconds: float
    top: float
    bottom: float
    label: Text


@dataclasses.dataclass(frozen=True)
class Timeline:
    variant: Variant
    height: float
    plot_top: float
    plot_bottom: float
    lanes: list[Lane]
    ticks: list[tuple[float, Text]]
    marks: list[Mark]
    breaks: list[AxisBreak]
    axis_title: Text

    @property
    def width(self) -> float:
        return self.variant.width


@dataclasses.dataclass(frozen=True)
class _Span:
    """A bar before layout."""

    start: float
    end: float
    labels: tuple[str, ...]  # longest first; the first that fits inside the bar, else the last above it
    state: str
    attempt: Attempt | None = None
    step: str = ""
    title: str = ""


def _label(span: _Span, width: float) -> tuple[str, bool]:
    inside = next((t for t in span.labels if fmt.text_px(t, BAR_FONT, bold=True) + 8 <= width), None)
    return (inside, True) if inside else (span.labels[-1], False)


def _label_x(center: float, text_w: float, limit: float) -> float:
    """A centred label's x, moved inward so that it stays inside [0, limit]."""
    return min(max(center, text_w / 2 + 2), limit - text_w / 2 - 2)


def _footprint(span: _Span, x0: float, x1: float, limit: float) -> tuple[float, float]:
    """The horizontal extent of a bar and its label."""
    width = max(x1 - x0, MIN_BAR_PX)
    text, inside = _label(span, width)
    if inside:
        return x0, x0 + width
    text_w = fmt.text_px(text, OUT_FONT)
    center = _label_x(x0 + width / 2, text_w, limit)
    return min(x0, center - text_w / 2), max(x0 + width, center + text_w / 2)


def _pack(spans: list[_Span], axis: TimeAxis, limit: float, max_rows: int = 8) -> list[list[_Span]]:
    """Rows of a lane: each bar, with its label, goes in the first row where it overlaps nothing on screen, so
    every attempt is visible and readable (past ``max_rows``, in the row that frees up first)."""
    rows: list[list[_Span]] = []
    ends: list[float] = []
    for span in spans:
        left, right = _footprint(span, axis.x(span.start), axis.x(span.end), limit)
        free = next((i for i, end in enumerate(ends) if end + 4 <= left), None)
        if free is None and len(rows) >= max_rows:
            free = min(range(len(ends)), key=ends.__getitem__)
        if free is None:
            rows.append([span])
            ends.append(right)
        else:
            rows[free].append(span)
            ends[free] = max(ends[free], right)
    return rows


def _attempt_span(a: Attempt, chunk: Chunk | None, run_status: str, open_end: datetime) -> _Span:
    state = a.state(run_status)
    end = a.finished_at or max(open_end, a.started_at)
    mark = "✕ " if state == "FAILED" else ""
    dates = fmt.day_range(chunk.chunk_start, chunk.chunk_end) if chunk else "?"
    tip = [f"chunk {a.chunk_id} ({dates}), attempt {a.attempt}: {state}", f"worker {a.worker_name}",
           f"{fmt.clock(a.started_at)} .. {fmt.clock(a.finished_at)} UTC ({fmt.between(a.started_at, a.finished_at)})"]
    if a.error:
        tip.append(a.error_text)
    return _Span(a.started_at.timestamp(), end.timestamp(),
                 (f"{mark}chunk {a.chunk_id} #{a.attempt}", f"{mark}c{a.chunk_id} #{a.attempt}"), state,
                 attempt=a, title="\n".join(tip))


def _step_spans(data: ReportData, end: datetime) -> list[_Span]:
    """The run's own steps before its chunks, per execution: ValidateConfig and StageVisits (from the run's
    start, or the redrive's, to ``staged_at``), then PlanChunks and the fan-out (to its first chunk attempt).
    ``staged_at`` is the latest stage's: it splits only the execution it falls in."""
    run = data.run
    starts = [(run.created_at, run.execution_name, "run")]
    starts += [(e.started_at, e.execution_name, "redrive") for e in data.redrives if e.started_at > run.created_at]
    starts.sort()
    out: list[_Span] = []
    for i, (start, name, kind) in enumerate(starts):
        until = starts[i + 1][0] if i + 1 < len(starts) else end
        firsts = [a.started_at for a in data.attempts if start <= a.started_at < until]
        first = min(firsts) if firsts else None
        fanned = first or until
        who = "the run" if kind == "run" else f"redrive {name}"
        if run.staged_at and start <= run.staged_at <= fanned:
            out.append(_Span(start.timestamp(), run.staged_at.timestamp(), ("validate · stage", "stage"), "stage",
                             step="stage", title=f"ValidateConfig and StageVisits of {who}: {fmt.clock(start)} .. "
                             f"{fmt.clock(run.staged_at)} UTC ({fmt.between(start, run.staged_at)})"))
            if first:
                out.append(_Span(run.staged_at.timestamp(), first.timestamp(), ("plan · fan out", "plan"), "plan",
                                 step="plan", title=f"PlanChunks and the fan-out of {who} until its first chunk "
                                 f"attempt: {fmt.clock(run.staged_at)} .. {fmt.clock(first)} UTC "
                                 f"({fmt.between(run.staged_at, first)})"))
        elif first:
            out.append(_Span(start.timestamp(), first.timestamp(), ("validate · stage · plan", "stage · plan", "setup"),
                             "prelude", step="prelude",
                             title=f"ValidateConfig, StageVisits and PlanChunks of {who} until its first chunk "
                             f"attempt: {fmt.clock(start)} .. {fmt.clock(first)} UTC ({fmt.between(start, first)})"))
    return out


def _bar(span: _Span, axis: TimeAxis, y: float, limit: float) -> Bar:
    x0, x1 = axis.x(span.start), axis.x(span.end)
    w = max(x1 - x0, MIN_BAR_PX)
    color = STEP_COLORS[span.state] if span.step else STATES[span.state][0]
    fill = {"FAILED": "url(#hatch)", "RUNNING": "url(#stripes)"}.get(span.state, color)
    text, inside = _label(span, w)
    label = (Text(x0 + w / 2, y + BAR_H / 2 + 4, text, BAR_FONT, cls="bar-label") if inside else
             Text(_label_x(x0 + w / 2, fmt.text_px(text, OUT_FONT), limit), y - 4, text, OUT_FONT,
                  cls="bar-label-out"))
    return Bar("step" if span.step else "attempt", x0, y, w, fill, fmt.darker(color), label, span.title,
               state=span.state, attempt=span.attempt, step=span.step)


def _place_rows(labels: list[Text]) -> list[int]:
    """The row (0 nearest the plot) of each label above the plot, so that none overlaps another."""
    rows: list[list[tuple[float, float]]] = []
    out = []
    for t in labels:
        x0, _, x1, _ = t.box
        row = next((i for i, taken in enumerate(rows) if all(x1 + 6 <= a or x0 >= b + 6 for a, b in taken)), None)
        if row is None:
            rows.append([])
            row = len(rows) - 1
        rows[row].append((x0, x1))
        out.append(row)
    return out


def _anchored(x: float, text: str, size: float, prefer: str, left: float, right: float) -> Text:
    """A label at ``x`` that stays inside [left, right]: anchored start (or end) and flipped if it would not."""
    w = fmt.text_px(text, size)
    anchor = prefer
    if anchor == "start" and x + w > right:
        anchor = "end"
    if anchor == "end" and x - w < left:
        anchor = "start" if x + w <= right else "middle"
    return Text(x, 0, text, size, anchor=anchor, cls="mark-label")


def layout_timeline(data: ReportData, variant: Variant) -> Timeline:
    run = data.run
    width = variant.width
    chunks = {c.chunk_id: c for c in data.chunks}
    open_end = data.generated_at if run.status == "RUNNING" else (run.finished_at or data.generated_at)
    end = run.finished_at or data.generated_at
    spans = [_attempt_span(a, chunks.get(a.chunk_id), run.status, open_end) for a in data.attempts]
    steps = _step_spans(data, end)
    redrives = [e for e in data.redrives if e.started_at >= run.created_at]

    by_worker: dict[str, list[_Span]] = {}
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        assert span.attempt is not None
        by_worker.setdefault(span.attempt.worker_name, []).append(span)
    workers = sorted(by_worker, key=fmt.natural)
    names = ["run steps", *workers] if steps else workers

    side = width >= 800  # lane names in a column at the left, else on a line above each lane
    if side:
        longest = max(fmt.text_px(fmt.shorten(n, 20), LANE_FONT, bold=True) for n in names)
        left = min(max(longest + 24, 110), 220)
    else:
        left = 8
    right = width - 12
    origin, end_t = run.created_at.timestamp(), end.timestamp()
    axis = TimeAxis.fit([(s.start, s.end) for s in [*spans, *steps]] + [(end_t, end_t)]
                        + [(e.started_at.timestamp(),) * 2 for e in redrives],
                        origin, left, right - left, break_px=40 if side else 28)

    # labels above the plot: the run's start and end, each redrive, each idle gap cut out of the axis
    tops: list[tuple[str, float, Text, str, str, float]] = []  # kind, x, label, title, execution, idle seconds
    x = axis.x(origin)
    tops.append(("run start", x, _anchored(x, "run start", MARK_FONT, "start", 2, width - 2),
                 f"run start {fmt.clock(run.created_at)} UTC: {run.execution_name}", run.execution_name, 0))
    for n, e in enumerate(redrives, 1):
        x = axis.x(e.started_at.timestamp())
        name = e.execution_name if width >= 800 else fmt.shorten(e.execution_name, 30 if width >= 600 else 18)
        tops.append(("redrive", x, _anchored(x, f"redrive {n}: {name}", MARK_FONT, "start", 2, width - 2),
                     f"redrive {n} began {fmt.clock(e.started_at)} UTC as execution {e.execution_name}",
                     e.execution_name, 0))
    kind = "run end" if run.finished_at else "now"
    x = axis.x(end_t)
    tops.append((kind, x, _anchored(x, kind, MARK_FONT, "end", 2, width - 2),
                 f"{kind} {fmt.clock(end)} UTC", "", 0))
    for x, gap in axis.breaks():
        tops.append(("gap", x, Text(x, 0, f"{fmt.duration(gap)} idle", TICK_FONT, cls="tick"), "", "", gap))
    rows = _place_rows([t[2] for t in tops])
    n_rows = max(rows, default=0) + 1
    plot_top = 6 + n_rows * MARK_ROW_H + 6

    # lanes
    lanes: list[Lane] = []
    y = plot_top
    for name in names:
        packed = _pack(steps if name == "run steps" else by_worker[name], axis, width)
        head = 0 if side else LANE_HEAD
        height = head + len(packed) * ROW_H + 4
        kind_ = "steps" if name == "run steps" else "worker"
        label = (Text(10, y + height / 2 + 4, fmt.shorten(name, 20), LANE_FONT, anchor="start", cls="lane-label")
                 if side else Text(left, y + 15, name, LANE_FONT, anchor="start", cls="lane-label"))
        bars = [_bar(span, axis, y + head + i * ROW_H + LABEL_ZONE, width) for i, row in enumerate(packed)
                for span in row]
        n = sum(b.attempt is not None for b in bars)
        title = (f"{name}: {n} attempt{'s' if n != 1 else ''}" if kind_ == "worker" else
                 "the run's own steps before its chunks: ValidateConfig, StageVisits, PlanChunks and the fan-out")
        lanes.append(Lane(name, kind_, y, height, label, title, bars))
        y += height
    plot_bottom = y

    marks: list[Mark] = []
    breaks: list[AxisBreak] = []
    for (kind, x, label, title, execution, gap), row in zip(tops, rows, strict=True):
        ly = plot_top - 8 - row * MARK_ROW_H
        placed = dataclasses.replace(label, y=ly)
        if kind == "gap":
            breaks.append(AxisBreak(x, gap, plot_top - 4, plot_bottom, placed))
        else:
            marks.append(Mark(kind, x, ly + 4, plot_bottom, placed, title, execution))
    ticks = [(x, t) for x, label in axis.ticks(min_spacing_px=84 if side else 70)
             if (t := Text(x, plot_bottom + 17, label, TICK_FONT)).box[0] >= 1 and t.box[2] <= width - 1]
    axis_title = Text(left + (right - left) / 2, plot_bottom + 36,
                      f"time since the run started ({fmt.clock(run.created_at)} UTC)" if width >= 600 else
                      "time since the run started (UTC)", TITLE_FONT, cls="axis-title")
    return Timeline(variant, plot_bottom + 46, plot_top, plot_bottom, lanes, ticks, marks, breaks, axis_title)


# --- conflicts per day -----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DayColumn:
    day: ConflictDay
    stale: bool
    band: tuple[float, float, float, float] | None  # x, y, w, h of the "not recomputed" background
    rects: list[tuple[str, float, float, float, float]]  # type, x, y, w, h
    value: Text | None
    tick: Text | None
    title: str


@dataclasses.dataclass(frozen=True)
class ConflictChart:
    variant: Variant
    height: float
    grid: list[tuple[float, Text]]  # y, label
    left: float
    right: float
    columns: list[DayColumn]
    axis_title: Text

    @property
    def width(self) -> float:
        return self.variant.width


def stale_days(chunks: Sequence[Chunk]) -> set[date]:
    """Days whose chunk did not succeed: their conflicts are not this run's."""
    return {d for c in chunks if c.status not in ("SUCCEEDED", "SUPERSEDED") for d in c.computed_days()}


def layout_conflicts(days: Sequence[ConflictDay], stale: set[date], variant: Variant) -> ConflictChart:
    width = variant.width
    height = 300.0 if width >= 600 else 260.0
    top, bottom = 26.0, 50.0
    peak = max((d.total for d in days), default=0)
    step = fmt.nice_step(peak / 4) if peak else 1
    y_max = max(step * math.ceil(peak / step), step)
    left = max(fmt.text_px(fmt.num(y_max), TICK_FONT) + 12, 30)
    right = width - 8
    plot_w, plot_h = right - left, height - top - bottom
    grid = []
    for i in range(int(y_max / step) + 1):
        v = i * step
        y = top + plot_h - plot_h * v / y_max
        grid.append((y, Text(left - 6, y + 4, fmt.num(v), TICK_FONT, anchor="end")))
    slot = plot_w / max(len(days), 1)
    bar_w = max(min(slot * 0.72, 48), 1.0)
    tick_w = fmt.text_px("10-01", TICK_FONT) + 10
    label_every = max(1, math.ceil(tick_w / slot))

    columns: list[tuple[ConflictDay, float, float, list[tuple[str, float, float, float, float]]]] = []
    for i, d in enumerate(days):
        x = left + i * slot + (slot - bar_w) / 2
        base = top + plot_h
        rects = []
        for kind, n in (("OVERLAP", d.overlap), ("TRAVEL", d.travel)):
            h = plot_h * n / y_max
            base -= h
            rects.append((kind, x, base, bar_w, h))
        columns.append((d, x, base, rects))

    # value labels: the biggest days first, each only where it overlaps no label and no other day's bar
    taken: list[tuple[float, float, float, float]] = []
    bars = [(i, (x, base, x + bar_w, top + plot_h)) for i, (_, x, base, _) in enumerate(columns)]
    values: dict[int, Text] = {}
    for i in sorted(range(len(columns)), key=lambda i: -columns[i][0].total):
        d, x, base, _ = columns[i]
        if not d.total:
            continue
        t = Text(x + bar_w / 2, base - 5, fmt.num(d.total), VALUE_FONT, cls="value")
        box = t.box
        if box[0] < 0 or box[2] > width or box[1] < 0:
            continue
        if any(_overlaps(box, b, pad=3) for b in taken) or any(
                _overlaps(box, rect, pad=1) for j, rect in bars if j != i):
            continue
        taken.append(box)
        values[i] = t

    out = []
    for i, (d, x, _, rects) in enumerate(columns):
        day = fmt.day(d.conflict_date)
        is_stale = d.conflict_date in stale
        note = "; not recomputed by this run: its chunk did not succeed" if is_stale else ""
        tick_x = _label_x(x + bar_w / 2, fmt.text_px(day[5:], TICK_FONT), width)
        tick = (Text(tick_x, top + plot_h + 21, day[5:], TICK_FONT, cls="tick stale-day" if is_stale else "tick")
                if i % label_every == 0 else None)
        out.append(DayColumn(d, is_stale, (left + i * slot, top, slot, plot_h) if is_stale else None, rects,
                             values.get(i), tick, f"{day}: {d.overlap} OVERLAP, {d.travel} TRAVEL{note}"))
    year = fmt.day(days[0].conflict_date)[:4] if days else ""
    return ConflictChart(variant, height, grid, left, right, out,
                         Text(left + plot_w / 2, height - 6, f"conflict date ({year})", TITLE_FONT, cls="axis-title"))

