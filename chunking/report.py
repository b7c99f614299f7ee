"""The visual run report: one self-contained HTML page about one run (inline CSS and SVG, no script, nothing
fetched), for the operator who wants to see at a glance what ran, how long each part took, what failed and why.

:func:`gather` reads the ledger and the output tables in one read-only snapshot; :func:`render` is a pure
function from that data to the page. Every text taken from the data goes through :func:`esc`."""

from __future__ import annotations

import contextlib
import dataclasses
import html
import math
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

import psycopg2.extensions

from chunking import db, ledger
from chunking.console import duration
from chunking.db import Connection

Row = dict[str, Any]

COUNTS = ("inserted", "updated", "resolved", "reopened", "unchanged")

# Attempt states on the timeline: the recorded outcome, or what an attempt without one means.
STATES = {
    "SUCCEEDED": ("#2f9e5b", "succeeded"),
    "FAILED": ("#d43d3d", "failed"),
    "DUPLICATE": ("#8b78d8", "duplicate delivery (changed nothing)"),
    "RUNNING": ("#3b7ddd", "still running"),
    "INTERRUPTED": ("#9aa1ab", "no outcome (its worker stopped)"),
}
CHUNK_STATUS_COLORS = {"SUCCEEDED": "#2f9e5b", "FAILED": "#d43d3d", "RETRYING": "#d98a1c", "RUNNING": "#3b7ddd",
                       "PENDING": "#9aa1ab", "SUPERSEDED": "#c3c8cf"}
COUNT_COLORS = {"inserted": "#3b7ddd", "updated": "#d98a1c", "resolved": "#2f9e5b", "reopened": "#c2417a",
                "unchanged": "#c3c8cf"}
TYPE_COLORS = {"OVERLAP": "#d9553d", "TRAVEL": "#3b8fc4"}
REASONS = {
    "NON_POSITIVE_DURATION": "ends at or before it starts",
    "DURATION_OVER_24H": "lasts more than 24 hours",
    "START_OUTSIDE_VISIT_DATE": "starts more than a day from its visit date",
}


@dataclasses.dataclass(frozen=True)
class ReportData:
    """Everything the page shows, read at ``generated_at``."""

    run: Row
    chunks: list[Row]
    attempts: list[Row]
    rejections: list[Row]  # reason, visits: the window's rejected visits now
    conflicts_by_day: list[Row]  # conflict_date, overlap, travel: the window's ACTIVE conflicts now
    generated_at: datetime


# --- data ----------------------------------------------------------------------------------------------------

def gather(conn: Connection, run_id: int) -> ReportData:
    """Read one run's ledger rows and its window's rejections and conflicts, all from one snapshot."""
    with _snapshot(conn):
        run = ledger.get_run(conn, run_id)
        window = {"window_start": run["window_start"], "window_end": run["window_end"]}
        return ReportData(
            run=run, chunks=ledger.list_chunks(conn, run_id), attempts=ledger.list_attempts(conn, run_id),
            rejections=db.fetch_all(conn, "report/count_rejections_by_reason", window),
            conflicts_by_day=db.fetch_all(conn, "report/count_conflicts_by_day", window),
            generated_at=datetime.now(UTC))


@contextlib.contextmanager
def _snapshot(conn: Connection) -> Iterator[None]:
    """A read-only REPEATABLE READ transaction, so a live run's page is one consistent picture."""
    before = (conn.isolation_level, conn.readonly)
    conn.rollback()
    conn.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
    try:
        yield
    finally:
        conn.rollback()
        conn.set_session(isolation_level="DEFAULT" if before[0] is None else before[0],
                         readonly="default" if before[1] is None else before[1])


# --- page ----------------------------------------------------------------------------------------------------

def esc(value: object) -> str:
    """Text made safe for HTML content and attribute values."""
    return html.escape(str(value), quote=True)


def render(data: ReportData) -> str:
    """The whole page."""
    run = data.run
    title = f"Run {run['run_id']} · {run['status']} · {run['window_start']}..{run['window_end']}"
    body = "\n".join([
        header_section(data),
        totals_section(run),
        timeline_section(data),
        chunks_section(data.chunks),
        throughput_section(data.chunks),
        '<div class="pair">',
        rejections_section(data.rejections, run),
        conflicts_section(data.conflicts_by_day, data.chunks),
        "</div>",
        attempts_section(data),
        f'<footer>Generated {esc(_clock(data.generated_at, seconds=True))} UTC by <code>etl-pipeline report</code> '
        f'from the run ledger (<code>etl.runs</code>, <code>etl.chunks</code>, <code>etl.chunk_attempts</code>). '
        "Rejections and conflicts are the tables' current state for the run's window, which a later run over "
        "the same dates may have changed.</footer>",
    ])
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n"
            f'<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n')


def header_section(data: ReportData) -> str:
    run = data.run
    status = str(run["status"])
    live = [c for c in data.chunks if c["status"] != "SUPERSEDED"]
    ok = sum(c["status"] == "SUCCEEDED" for c in live)
    end = run["finished_at"] or data.generated_at
    took = _seconds((end - run["created_at"]).total_seconds())
    facts = [
        ("window", f"{_day(run['window_start'])} .. {_day(run['window_end'])} ({_days(run)} days)"),
        ("trigger", run["trigger"]),
        ("execution", run["execution_name"]),
        ("started", f"{_clock(run['created_at'], seconds=True)} UTC"),
        ("finished", f"{_clock(run['finished_at'], seconds=True)} UTC" if run["finished_at"] else "not yet"),
        ("duration", took if run["finished_at"] else f"{took} so far"),
        ("chunks", f"{ok} of {len(live)} succeeded, {len(data.attempts)} attempts"),
        ("redrives", run["redrives"]),
    ]
    items = "".join(f'<div><dt>{esc(k)}</dt><dd data-fact="{esc(k)}">{esc(v)}</dd></div>' for k, v in facts)
    error = (f'<div class="error" data-fact="error"><strong>error</strong> {esc(run["error"])}</div>'
             if run.get("error") else "")
    return (f'<header class="run" data-section="run" data-run-id="{esc(run["run_id"])}" data-status="{esc(status)}">'
            f'<h1>Run {esc(run["run_id"])} {_badge(status, CHUNK_STATUS_COLORS.get(status, "#5b6470"))}'
            f'<span class="sub">conflict visit map</span></h1>'
            f'<p class="outcome">{esc(_outcome_sentence(run, live))}</p>'
            f'<dl class="facts">{items}</dl>{error}</header>')


def _outcome_sentence(run: Row, live: list[Row]) -> str:
    bad = [c for c in live if c["status"] != "SUCCEEDED"]
    if not live:
        return {"RUNNING": "Staging and planning: no chunks yet.",
                "SUCCEEDED": "The window had nothing to process."}.get(
            run["status"], "The run ended before it planned any chunk.")
    if not bad:
        return f"All {len(live)} chunks succeeded."
    named = ", ".join(f"chunk {c['chunk_id']} ({_day(c['chunk_start'])}) {c['status']}" for c in bad[:6])
    more = f" and {len(bad) - 6} more" if len(bad) > 6 else ""
    return f"{len(live) - len(bad)} of {len(live)} chunks succeeded; not succeeded: {named}{more}."


def totals_section(run: Row) -> str:
    cards = [("visits", run["visits"], "visits processed by the chunks")]
    cards += [(k, run[k], f"conflict rows {k}") for k in COUNTS]
    cards.append(("rejected", run["rejected_rows"], "ineligible visits in the window"))
    html_cards = "".join(
        f'<div class="card" data-total="{esc(k)}" data-value="{esc(_int(v))}" title="{esc(hint)}">'
        f'<div class="num">{esc(_num(v))}</div><div class="label"><span class="swatch" '
        f'style="background:{COUNT_COLORS.get(k, "#5b6470")}"></span>{esc(k)}</div></div>'
        for k, v, hint in cards)
    return f'<section data-section="totals"><h2>Totals</h2><div class="cards">{html_cards}</div></section>'


# --- timeline --------------------------------------------------------------------------------------------------

TICK_STEPS_S = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
                10800, 21600, 43200, 86400)
IDLE_GAP_MIN_S = 300.0
MIN_BAR_PX = 4.0


@dataclasses.dataclass(frozen=True)
class TimeAxis:
    """Epoch seconds to x pixels, with long idle gaps (a redrive hours after the night) cut out of the axis.

    Ticks are labelled as offsets from ``origin`` (the run's start)."""

    segments: tuple[tuple[float, float], ...]
    origin: float
    left: float
    width: float
    break_px: float = 40.0

    @classmethod
    def fit(cls, spans: Sequence[tuple[float, float]], origin: float, left: float, width: float) -> TimeAxis:
        ordered = sorted((s, max(s, e)) for s, e in [*spans, (origin, origin)])
        cut_over = max(IDLE_GAP_MIN_S, (ordered[-1][1] - ordered[0][0]) / 4)
        segments = [list(ordered[0])]
        for start, end in ordered[1:]:
            if start - segments[-1][1] > cut_over:
                segments.append([start, end])
            else:
                segments[-1][1] = max(segments[-1][1], end)
        return cls(tuple((s, e) for s, e in segments), origin, left, width)

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

    def ticks(self, min_spacing_px: float = 84) -> list[tuple[float, str]]:
        """(x, label) per tick, at round offsets from the origin. Labels never touch: a segment's first tick
        (after a break) wins over the tick before it, any other tick gives way to the one before."""
        out: list[tuple[float, str]] = []
        step = next((st for st in TICK_STEPS_S if st * self._scale >= min_spacing_px), TICK_STEPS_S[-1])
        for i, (s, _) in enumerate(self.segments):
            k = math.ceil((s - self.origin) / step - 1e-9)
            first = True
            while (offset := k * step) <= s - self.origin + self._spans[i] + 1e-9:
                x, label = self.x(self.origin + offset), _offset_label(offset, step)
                touching = bool(out) and x - out[-1][0] < (_text_px(out[-1][1], 11) + _text_px(label, 11)) / 2 + 10
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


def attempt_state(attempt: Row, run_status: str) -> str:
    if attempt["outcome"]:
        return str(attempt["outcome"])
    return "RUNNING" if run_status == "RUNNING" else "INTERRUPTED"


def timeline_section(data: ReportData) -> str:
    run, attempts = data.run, data.attempts
    counts = {state: sum(attempt_state(a, run["status"]) == state for a in attempts) for state in STATES}
    legend = "".join(
        f'<span class="key" data-legend="{esc(state)}"><span class="swatch {esc(state.lower())}" '
        f'style="background:{color}"></span>{esc(label)} <b>{counts[state]}</b></span>'
        for state, (color, label) in STATES.items())
    never = [c for c in data.chunks if not any(a["chunk_id"] == c["chunk_id"] for a in attempts)]
    note = ""
    if never:
        note = (f'<p class="note" data-never-attempted="{esc(",".join(str(c["chunk_id"]) for c in never))}">'
                f'Not attempted (yet): {esc(", ".join(_chunk_name(c) for c in never))}.</p>')
    chart = timeline_svg(data) if attempts else '<p class="empty">No chunk attempts recorded.</p>'
    return (f'<section data-section="timeline"><h2>Timeline <small>every attempt of every chunk, one lane per '
            f'worker, from the run\'s start to its end; hover a bar for its details</small></h2>'
            f'<div class="legend">{legend}</div>{chart}{note}</section>')


# Timeline geometry (SVG user units; the chart scales to the page width).
TL_WIDTH, TL_LEFT, TL_RIGHT, TL_TOP, TL_AXIS = 1280, 168, 18, 24, 40
ROW_H, BAR_H, LABEL_ZONE = 40, 22, 13  # a lane row: room for a label above a narrow bar, then the bar
BAR_FONT, OUT_FONT = 11.5, 10.5  # px, as in CSS below


def timeline_svg(data: ReportData) -> str:
    run, attempts = data.run, data.attempts
    chunks = {c["chunk_id"]: c for c in data.chunks}
    open_end = data.generated_at if run["status"] == "RUNNING" else (run["finished_at"] or data.generated_at)
    bars = [(a, _epoch(a["started_at"]), _epoch(a["finished_at"] or max(open_end, a["started_at"])))
            for a in attempts]
    origin = _epoch(run["created_at"])
    end = _epoch(run["finished_at"] or data.generated_at)
    axis = TimeAxis.fit([(s, e) for _, s, e in bars] + [(end, end)], origin, TL_LEFT, TL_WIDTH - TL_LEFT - TL_RIGHT)

    by_worker: dict[str, list[tuple[Row, float, float]]] = {}
    for bar in sorted(bars, key=lambda b: (b[1], b[2])):
        by_worker.setdefault(_worker(bar[0]), []).append(bar)
    def state(a: Row) -> str:
        return attempt_state(a, run["status"])

    lanes = {worker: _pack(found, axis, state) for worker, found in by_worker.items()}
    order = sorted(lanes, key=_natural)
    plot_bottom = TL_TOP + sum(len(lanes[w]) * ROW_H + 4 for w in order)
    height = plot_bottom + TL_AXIS

    parts = [f'<svg class="timeline" viewBox="0 0 {TL_WIDTH} {height}" width="100%" role="img" '
             f'aria-label="Gantt chart of chunk attempts by worker">', SVG_PATTERNS]
    y = TL_TOP
    for i, worker in enumerate(order):  # lane backgrounds under the grid
        lane_height = len(lanes[worker]) * ROW_H + 4
        parts.append(f'<rect class="lane-bg{" alt" if i % 2 else ""}" x="0" y="{y}" width="{TL_WIDTH}" '
                     f'height="{lane_height}"/>')
        y += lane_height
    for x, label in axis.ticks():
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{TL_TOP}" x2="{x:.1f}" y2="{plot_bottom + 4}"/>'
                     f'<text class="tick" x="{x:.1f}" y="{plot_bottom + 17}" text-anchor="middle">{esc(label)}</text>')
    parts.append(f'<text class="axis-title" x="{TL_LEFT + (TL_WIDTH - TL_LEFT - TL_RIGHT) / 2:.0f}" '
                 f'y="{plot_bottom + 34}" text-anchor="middle">time since the run started '
                 f'({esc(_clock(run["created_at"], seconds=True))} UTC)</text>')
    for x, gap in axis.breaks():
        parts.append(f'<g class="axis-break" data-gap-seconds="{gap:.0f}"><rect x="{x - 14:.1f}" y="{TL_TOP - 20}" '
                     f'width="28" height="{plot_bottom - TL_TOP + 24}" fill="#eef0f3"/>'
                     f'<path d="M{x - 4:.1f} {TL_TOP} l8 {(plot_bottom - TL_TOP) / 2:.1f} l-8 '
                     f'{(plot_bottom - TL_TOP) / 2:.1f}" stroke="#9aa1ab" fill="none"/>'
                     f'<text class="tick" x="{x:.1f}" y="{TL_TOP - 8}" text-anchor="middle">'
                     f'{esc(duration(gap))} idle</text></g>')
    for label, t, anchor, dx in (("run start", origin, "start", 4), ("run end", end, "end", -4)):
        if label == "run end" and not run["finished_at"]:
            label, anchor, dx = "now", "end", -4
        x = axis.x(t)
        parts.append(f'<g class="mark" data-mark="{esc(label)}"><line x1="{x:.1f}" y1="{TL_TOP - 14}" x2="{x:.1f}" '
                     f'y2="{plot_bottom}"/><text class="mark-label" x="{x + dx:.1f}" y="{TL_TOP - 6}" '
                     f'text-anchor="{anchor}">{esc(label)}</text></g>')
    y = TL_TOP
    for worker in order:  # the lanes, their labels and bars over the grid
        rows = lanes[worker]
        lane_height = len(rows) * ROW_H + 4
        n = sum(len(r) for r in rows)
        parts.append(f'<g class="lane" data-worker="{esc(worker)}" data-attempts="{n}">'
                     f'<text class="lane-label" x="10" y="{y + lane_height / 2 + 4:.1f}">'
                     f'<title>{esc(worker)}: {n} attempt{"s" if n != 1 else ""}</title>'
                     f'{esc(_shorten(worker, 20))}</text>')
        for i, row in enumerate(rows):
            for a, s, e in row:
                parts.append(_bar(a, chunks.get(a["chunk_id"]), axis.x(s), axis.x(e), y + i * ROW_H + LABEL_ZONE,
                                  state(a)))
        parts.append("</g>")
        y += lane_height
    parts.append("</svg>")
    return "".join(parts)


SVG_PATTERNS = (
    '<defs><pattern id="stripes" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
    '<rect width="8" height="8" fill="#3b7ddd"/><rect width="3" height="8" fill="#6fa0ea"/></pattern>'
    '<pattern id="hatch" width="7" height="7" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
    '<rect width="7" height="7" fill="#d43d3d"/><rect width="2" height="7" fill="#b02a2a"/></pattern></defs>')


def _pack(bars: list[tuple[Row, float, float]], axis: TimeAxis, state: Callable[[Row], str],
          max_rows: int = 8) -> list[list[tuple[Row, float, float]]]:
    """Rows of a lane: each bar, with its label, goes in the first row where it overlaps nothing on screen, so
    every attempt is visible and readable (past ``max_rows``, in the row that frees up first)."""
    rows: list[list[tuple[Row, float, float]]] = []
    ends: list[float] = []
    for bar in bars:
        left, right = _footprint(bar[0], axis.x(bar[1]), axis.x(bar[2]), state(bar[0]))
        free = next((i for i, end in enumerate(ends) if end + 3 <= left), None)
        if free is None and len(rows) >= max_rows:
            free = min(range(len(ends)), key=ends.__getitem__)
        if free is None:
            rows.append([bar])
            ends.append(right)
        else:
            rows[free].append(bar)
            ends[free] = max(ends[free], right)
    return rows


def _label(a: Row, width: float, state: str) -> tuple[str, bool]:
    """An attempt's label and whether it fits inside its bar (else it goes above, smaller)."""
    mark = "✕ " if state == "FAILED" else ""
    long, short = f"{mark}chunk {a['chunk_id']} #{a['attempt']}", f"{mark}c{a['chunk_id']} #{a['attempt']}"
    inside = next((t for t in (long, short) if _text_px(t, BAR_FONT) + 8 <= width), None)
    return (inside, True) if inside else (short, False)


def _footprint(a: Row, x0: float, x1: float, state: str) -> tuple[float, float]:
    """The screen extent of a bar and its label."""
    width = max(x1 - x0, MIN_BAR_PX)
    text, inside = _label(a, width, state)
    half = max(width, 0 if inside else _text_px(text, OUT_FONT)) / 2
    return x0 + width / 2 - half, x0 + width / 2 + half


def _bar(a: Row, chunk: Row | None, x0: float, x1: float, y: float, state: str) -> str:
    """One attempt: a bar coloured by its outcome, labelled with its chunk and attempt number, details on hover."""
    w = max(x1 - x0, MIN_BAR_PX)
    color = STATES[state][0]
    fill = {"FAILED": "url(#hatch)", "RUNNING": "url(#stripes)"}.get(state, color)
    tip = [f"chunk {a['chunk_id']} ({_range(chunk) if chunk else '?'}), attempt {a['attempt']}: {state}",
           f"worker {_worker(a)}",
           f"{_clock(a['started_at'], seconds=True)} .. {_clock(a['finished_at'], seconds=True)} UTC ({_took(a)})"]
    if a["error"]:
        tip.append(_error(a))
    label, inside = _label(a, w, state)
    text = (f'<text class="bar-label" x="{x0 + w / 2:.1f}" y="{y + BAR_H / 2 + 4:.1f}" text-anchor="middle">'
            f'{esc(label)}</text>' if inside else
            f'<text class="bar-label-out" x="{x0 + w / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle">'
            f'{esc(label)}</text>')
    return (f'<g class="attempt" data-chunk="{esc(a["chunk_id"])}" data-attempt="{esc(a["attempt"])}" '
            f'data-outcome="{esc(state)}" data-worker="{esc(_worker(a))}">'
            f'<title>{esc(chr(10).join(tip))}</title>'
            f'<rect x="{x0:.1f}" y="{y:.1f}" width="{w:.1f}" height="{BAR_H}" rx="3" fill="{fill}" '
            f'stroke="{_darker(color)}"/>{text}</g>')


# --- rows per chunk, throughput ----------------------------------------------------------------------------

def chunks_section(chunks: list[Row]) -> str:
    if not chunks:
        return '<section data-section="rows-per-chunk"><h2>Rows per chunk</h2><p class="empty">No chunks.</p></section>'
    top_visits = max(_int(c["visits"]) for c in chunks) or 1
    top_rows = max(sum(_int(c[k]) for k in COUNTS) for c in chunks) or 1
    key = "".join(f'<span class="key"><span class="swatch" style="background:{COUNT_COLORS[k]}"></span>'
                  f'{esc(k)}</span>' for k in COUNTS)
    head = "".join(f"<th class=num>{esc(h)}</th>" for h in COUNTS)
    rows = []
    for c in chunks:
        total = sum(_int(c[k]) for k in COUNTS)
        stack = "".join(f'<span style="width:{100 * _int(c[k]) / top_rows:.2f}%;background:{COUNT_COLORS[k]}" '
                        f'title="{esc(k)} {esc(_num(c[k]))}"></span>' for k in COUNTS if _int(c[k]))
        data = " ".join(f'data-{k}="{_int(c[k])}"' for k in ("visits", *COUNTS))
        took = _seconds(c["duration_ms"] / 1000) if c["duration_ms"] is not None else "-"
        rows.append(
            f'<tr data-chunk="{esc(c["chunk_id"])}" data-status="{esc(c["status"])}" {data}>'
            f'<td class="num">{esc(c["chunk_id"])}</td><td class="nowrap">{esc(_range(c))}</td>'
            f'<td>{_badge(str(c["status"]), CHUNK_STATUS_COLORS.get(str(c["status"]), "#5b6470"))}</td>'
            f'<td class="num">{esc(c["attempts"])}</td><td class="num">{esc(took)}</td>'
            f'<td class="num">{esc(_num(c["visits"]))}</td>'
            f'<td class="barcell"><span class="hbar visits" style="width:{100 * _int(c["visits"]) / top_visits:.2f}%">'
            f'</span></td>'
            f'<td class="barcell"><span class="stack" title="{esc(_num(total))} rows">{stack}</span></td>'
            + "".join(f'<td class="num">{esc(_num(c[k]))}</td>' for k in COUNTS)
            + f'<td class="err" title="{esc(c["last_error"] or "")}">{esc(_clip(c["last_error"] or "", 90))}</td>'
            '</tr>')
    return (f'<section data-section="rows-per-chunk"><h2>Rows per chunk <small>visits processed, and what happened '
            f'to the conflict rows of the chunk\'s dates</small></h2><div class="legend">{key}</div>'
            f'<table class="chunks"><thead><tr><th class=num>chunk</th><th>dates</th><th>status</th>'
            f'<th class=num>attempts</th><th class=num>took</th><th class=num>visits</th><th></th>'
            f'<th>conflict rows</th>{head}<th>last error</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f'</section>')


def throughput(chunk: Row) -> float | None:
    """Visits per second of a chunk's successful attempt, or None when it has no duration yet."""
    if not chunk["duration_ms"] or chunk["visits"] is None:
        return None
    return _int(chunk["visits"]) * 1000 / chunk["duration_ms"]


def throughput_section(chunks: list[Row]) -> str:
    rates = [(c, throughput(c)) for c in chunks]
    known = [r for _, r in rates if r is not None]
    top = max(known, default=0) or 1
    visits = sum(_int(c["visits"]) for c, r in rates if r is not None)
    busy_ms = sum(c["duration_ms"] for c, r in rates if r is not None)
    summary = (f"{_rate(visits * 1000 / busy_ms)} visits/s over {_num(visits)} visits in {_seconds(busy_ms / 1000)} "
               "of chunk work" if busy_ms else "no chunk has finished yet")
    rows = []
    for c, r in rates:
        if r is None:
            value = "<small>no duration: the chunk has not succeeded</small>"
        else:
            value = (f"{esc(_rate(r))} visits/s <small>({esc(_num(c['visits']))} in "
                     f"{esc(_seconds(c['duration_ms'] / 1000))})</small>")
        rows.append(f'<div class="trow" data-chunk="{esc(c["chunk_id"])}" '
                    f'data-visits-per-second="{"" if r is None else f"{r:.1f}"}">'
                    f'<span class="tlabel">{esc(_chunk_name(c))}</span>'
                    f'<span class="track"><span class="hbar rate" style="width:{100 * (r or 0) / top:.2f}%"></span>'
                    f'</span><span class="tvalue">{value}</span></div>')
    return (f'<section data-section="throughput"><h2>Throughput per chunk <small>visits per second of the '
            f'successful attempt</small></h2><p class="summary">{esc(summary)}</p>{"".join(rows)}</section>')


# --- rejections, conflicts -------------------------------------------------------------------------------------

def rejections_section(rejections: list[Row], run: Row) -> str:
    total = sum(_int(r["visits"]) for r in rejections)
    top = max((_int(r["visits"]) for r in rejections), default=0) or 1
    rows = []
    for r in rejections:
        n = _int(r["visits"])
        rows.append(
            f'<div class="trow" data-reason="{esc(r["reason"])}" data-count="{n}">'
            f'<span class="tlabel wide"><code>{esc(r["reason"])}</code>'
            f'<small>{esc(REASONS.get(r["reason"], ""))}</small></span>'
            f'<span class="track"><span class="hbar reject" style="width:{100 * n / top:.2f}%"></span></span>'
            f'<span class="tvalue">{esc(_num(n))} <small>({100 * n / total:.0f}%)</small></span></div>')
    body = "".join(rows) or '<p class="empty">No rejected visits in the window.</p>'
    return (f'<section data-section="rejections" data-total="{total}"><h2>Rejections by reason <small>'
            f'{esc(_num(total))} ineligible visits dated {esc(_day(run["window_start"]))}..'
            f'{esc(_day(run["window_end"]))}</small></h2>{body}</section>')


def conflicts_section(days: list[Row], chunks: list[Row]) -> str:
    totals = {t: sum(_int(d[t.lower()]) for d in days) for t in TYPE_COLORS}
    stale = {date.fromordinal(n) for c in chunks if c["status"] not in ("SUCCEEDED", "SUPERSEDED")
             for n in range(c["chunk_start"].toordinal(), c["chunk_end"].toordinal() + 1)}
    key = "".join(f'<span class="key" data-legend="{esc(t)}"><span class="swatch" style="background:{c}"></span>'
                  f'{esc(t)} <b>{esc(_num(totals[t]))}</b></span>' for t, c in TYPE_COLORS.items())
    if stale & {d["conflict_date"] for d in days}:
        key += ('<span class="key" data-legend="not-recomputed"><span class="swatch" style="background:#fbd5d5">'
                '</span>not recomputed: its chunk did not succeed</span>')
    return (f'<section data-section="conflicts"><h2>Conflicts by type per day <small>ACTIVE conflicts by conflict '
            f'date</small></h2><div class="legend">{key}</div>{conflicts_svg(days, stale) if days else ""}</section>')


def conflicts_svg(days: list[Row], stale: set[date]) -> str:
    width, height, left, bottom, top = 640, 280, 46, 40, 22
    plot_w, plot_h = width - left - 10, height - top - bottom
    peak = max((_int(d["overlap"]) + _int(d["travel"]) for d in days), default=0)
    step = _nice_step(peak / 4) if peak else 1
    y_max = max(step * math.ceil(peak / step), step)
    slot = plot_w / len(days)
    bar_w = max(min(slot * 0.72, 48), 1.0)
    label_every = max(1, math.ceil(44 / slot))
    parts = [f'<svg class="conflicts" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="ACTIVE conflicts per day by type">']
    for i in range(int(y_max / step) + 1):
        v = i * step
        y = top + plot_h - plot_h * v / y_max
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(_num(v))}</text>')
    for i, d in enumerate(days):
        x = left + i * slot + (slot - bar_w) / 2
        day, overlap, travel = _day(d["conflict_date"]), _int(d["overlap"]), _int(d["travel"])
        note = "; not recomputed by this run: its chunk did not succeed" if d["conflict_date"] in stale else ""
        parts.append(f'<g class="day" data-date="{esc(day)}" data-overlap="{overlap}" data-travel="{travel}" '
                     f'data-recomputed="{"no" if note else "yes"}"><title>{esc(day)}: {overlap} OVERLAP, '
                     f'{travel} TRAVEL{esc(note)}</title>')
        if note:
            parts.append(f'<rect class="stale" x="{left + i * slot:.1f}" y="{top}" width="{slot:.1f}" '
                         f'height="{plot_h}" fill="#fbd5d5"/>')
        base: float = top + plot_h
        for kind, n in (("OVERLAP", overlap), ("TRAVEL", travel)):
            h = plot_h * n / y_max
            base -= h
            parts.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{TYPE_COLORS[kind]}"/>')
        if len(days) <= 31 and overlap + travel:
            parts.append(f'<text class="value" x="{x + bar_w / 2:.1f}" y="{base - 4:.1f}" text-anchor="middle">'
                         f'{esc(_num(overlap + travel))}</text>')
        if i % label_every == 0:
            parts.append(f'<text class="{"tick stale-day" if note else "tick"}" x="{x + bar_w / 2:.1f}" '
                         f'y="{top + plot_h + 16}" text-anchor="middle">{esc(day[5:])}</text>')
        parts.append("</g>")
    parts.append(f'<text class="axis-title" x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle">'
                 f'conflict date ({esc(_day(days[0]["conflict_date"])[:4])})</text></svg>')
    return "".join(parts)


# --- attempts --------------------------------------------------------------------------------------------------

def attempts_section(data: ReportData) -> str:
    chunks = {c["chunk_id"]: c for c in data.chunks}
    status = data.run["status"]
    failed = [a for a in data.attempts if attempt_state(a, status) not in ("SUCCEEDED", "DUPLICATE")]

    def table(rows: list[Row]) -> str:
        body = "".join(
            f'<tr data-chunk="{esc(a["chunk_id"])}" data-attempt="{esc(a["attempt"])}">'
            f'<td class="num">{esc(a["chunk_id"])}</td>'
            f'<td>{esc(_range(chunks[a["chunk_id"]]) if a["chunk_id"] in chunks else "?")}</td>'
            f'<td class="num">{esc(a["attempt"])}</td><td>{esc(_worker(a))}</td>'
            f'<td>{esc(_clock(a["started_at"], seconds=True))}</td>'
            f'<td>{esc(_clock(a["finished_at"], seconds=True) if a["finished_at"] else "-")}</td>'
            f'<td class="num">{esc(_took(a))}</td>'
            f'<td>{_badge(attempt_state(a, status), STATES[attempt_state(a, status)][0])}</td>'
            f'<td class="err">{esc(_error(a))}</td></tr>' for a in rows)
        return (f'<table class="attempts"><thead><tr><th class=num>chunk</th><th>dates</th><th class=num>attempt</th>'
                f'<th>worker</th><th>started (UTC)</th><th>finished (UTC)</th><th class=num>took</th><th>outcome</th>'
                f'<th>error</th></tr></thead><tbody>{body}</tbody></table>')

    problems = (f'<h3>Attempts that did not succeed ({len(failed)})</h3>{table(failed)}' if failed else
                '<p class="summary">Every attempt succeeded (or found its chunk already applied).</p>')
    return (f'<section data-section="attempts"><h2>Attempts</h2>{problems}<details><summary>All '
            f'{len(data.attempts)} attempts</summary>{table(data.attempts)}</details></section>')


# --- small helpers ---------------------------------------------------------------------------------------------

def _badge(text: str, color: str) -> str:
    return f'<span class="badge" style="background:{esc(color)}">{esc(text)}</span>'


def _int(value: Any) -> int:
    return int(value or 0)


def _num(value: Any) -> str:
    return "-" if value is None else f"{int(value):,}"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _day(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _days(run: Row) -> int:
    return (run["window_end"] - run["window_start"]).days + 1


def _range(chunk: Row) -> str:
    start, end = _day(chunk["chunk_start"]), _day(chunk["chunk_end"])
    return start if start == end else f"{start}..{end}"


def _chunk_name(chunk: Row) -> str:
    return f"chunk {chunk['chunk_id']} · {_range(chunk)}"


def _worker(attempt: Row) -> str:
    return str(attempt["worker"] or "unknown worker")


def _error(attempt: Row) -> str:
    if not attempt["error"]:
        return ""
    return f"{attempt['error_type']}: {attempt['error']}" if attempt["error_type"] else str(attempt["error"])


def _took(attempt: Row) -> str:
    if not attempt["finished_at"]:
        return "-"
    return _seconds((attempt["finished_at"] - attempt["started_at"]).total_seconds())


def _seconds(value: float) -> str:
    """A duration precise enough for chunks that take milliseconds: 7 ms, 0.35s, 12.4s, 4m30s."""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f}s" if value < 10 else duration(value)


def _clock(value: datetime | None, *, seconds: bool = False) -> str:
    if value is None:
        return "-"
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _epoch(value: datetime) -> float:
    return value.timestamp()


def _offset_label(seconds: float, step: float) -> str:
    """A tick's offset from the run's start, as precise as the tick step: +0.35s, +12s, +4m30s, +6h05m."""
    decimals = 2 if step < 0.1 else 1 if step < 1 else 0
    hours, rest = divmod(round(seconds, decimals), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"+{int(hours)}h{int(minutes):02d}m" + (f"{secs:02.0f}s" if step < 60 else "")
    if minutes:
        return f"+{int(minutes)}m" + (f"{secs:0{3 + decimals if decimals else 2}.{decimals}f}s" if step < 60 else "")
    return "0" if seconds == 0 else f"+{secs:.{decimals}f}s"


def _nice_step(raw: float) -> int:
    magnitude = 10 ** max(0, math.floor(math.log10(max(raw, 1))))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _natural(text: str) -> list[Any]:
    """Sort key: chunk-worker-2 before chunk-worker-10."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text)]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def _text_px(text: str, size: float) -> float:
    """A rough width of a label in the page's sans-serif font."""
    return len(text) * size * 0.58


def _darker(color: str) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"#{int(r * 0.75):02x}{int(g * 0.75):02x}{int(b * 0.75):02x}"


CSS = """
:root { --ink:#1f2933; --muted:#5b6470; --line:#e3e6ea; --bg:#f6f7f9; --card:#fff; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font:14px/1.45 "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; }
main { max-width:1360px; margin:0 auto; padding:20px 24px 40px; }
h1 { font-size:26px; margin:0 0 6px; display:flex; align-items:center; gap:12px; }
h1 .sub { font-size:14px; font-weight:normal; color:var(--muted); margin-left:auto; }
h2 { font-size:17px; margin:0 0 10px; }
h2 small, h3 small { font-weight:normal; color:var(--muted); font-size:13px; margin-left:8px; }
h3 { font-size:14px; margin:4px 0 8px; }
section, header.run { background:var(--card); border:1px solid var(--line); border-radius:8px;
                      padding:16px 18px; margin:0 0 16px; }
.pair { display:grid; grid-template-columns: 1fr 1fr; gap:16px; align-items:start; }
.pair section { margin:0 0 16px; }
.badge { display:inline-block; color:#fff; font-size:12px; font-weight:bold; letter-spacing:.03em;
         border-radius:4px; padding:2px 8px; vertical-align:middle; }
h1 .badge { font-size:15px; padding:3px 10px; }
.outcome { margin:0 0 10px; font-size:15px; }
.facts { display:grid; grid-template-columns:repeat(4, minmax(0, 1fr)); gap:6px 24px; margin:0; }
.facts dt { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.facts dd { margin:0; font-weight:bold; overflow-wrap:anywhere; }
.error { margin-top:12px; padding:10px 12px; background:#fdecec; border-left:4px solid #d43d3d; border-radius:4px;
         font-family:"DejaVu Sans Mono", monospace; font-size:13px; white-space:pre-wrap; overflow-wrap:anywhere; }
.error strong { font-family:"DejaVu Sans", Arial, sans-serif; color:#b02a2a; margin-right:6px; }
.cards { display:grid; grid-template-columns:repeat(7, 1fr); gap:10px; }
.card { border:1px solid var(--line); border-radius:6px; padding:10px 12px; position:relative; }
.card .num { font-size:24px; font-weight:bold; }
.card .label { color:var(--muted); display:flex; align-items:center; gap:6px; }
.legend { display:flex; flex-wrap:wrap; gap:6px 18px; margin:0 0 8px; color:var(--muted); }
.key { display:inline-flex; align-items:center; gap:6px; }
.key b { color:var(--ink); }
.swatch { display:inline-block; width:12px; height:12px; border-radius:3px; }
.swatch.failed { background:repeating-linear-gradient(45deg, #d43d3d 0 5px, #b02a2a 5px 7px) !important; }
.swatch.running { background:repeating-linear-gradient(45deg, #3b7ddd 0 5px, #6fa0ea 5px 8px) !important; }
svg text { font-family:"DejaVu Sans", Arial, sans-serif; }
svg .grid { stroke:#e3e6ea; }
svg .tick { font-size:11px; fill:var(--muted); }
svg .axis-title { font-size:12px; fill:var(--muted); }
svg .lane-bg { fill:#fff; stroke:#eef0f3; }
svg .lane-bg.alt { fill:#f8f9fb; }
svg .lane-label { font-size:12.5px; fill:var(--ink); font-weight:bold; }
svg .bar-label { font-size:11.5px; fill:#fff; font-weight:bold; pointer-events:none; }
svg .bar-label-out { font-size:10.5px; fill:var(--ink); }
svg .attempt:hover rect { stroke:#111; stroke-width:2; }
svg .mark line { stroke:#5b6470; stroke-dasharray:4 3; }
svg .mark-label { font-size:11px; fill:var(--muted); }
svg .value { font-size:11px; fill:var(--ink); }
svg text.stale-day { fill:#b02a2a; font-weight:bold; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th { text-align:left; color:var(--muted); font-weight:normal; font-size:12px; border-bottom:1px solid var(--line);
     padding:4px 8px; white-space:nowrap; }
td { padding:5px 8px; border-bottom:1px solid #f0f1f3; vertical-align:middle; }
.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td.nowrap, table.attempts td:nth-child(-n+6) { white-space:nowrap; }
td.err { color:#b02a2a; font-family:"DejaVu Sans Mono", monospace; font-size:12px; overflow-wrap:anywhere; }
table.chunks td.err { min-width:260px; max-width:360px; }
.barcell { width:9%; min-width:90px; }
.hbar { display:block; height:12px; border-radius:3px; min-width:1px; }
.hbar.visits { background:#7b8794; }
.hbar.rate { background:#3b7ddd; height:16px; }
.hbar.reject { background:#d98a1c; height:16px; }
.stack { display:flex; height:12px; border-radius:3px; overflow:hidden; }
.stack span { display:block; height:100%; }
.trow { display:grid; grid-template-columns: 230px 1fr 260px; align-items:center; gap:12px; padding:3px 0; }
.trow .tlabel.wide { display:flex; flex-direction:column; }
.tlabel small { color:var(--muted); }
.track { background:#f0f1f3; border-radius:3px; }
.tvalue { font-variant-numeric:tabular-nums; }
.tvalue small { color:var(--muted); }
section[data-section="rejections"] .trow { grid-template-columns: 240px 1fr 110px; }
.summary, .note, .empty { color:var(--muted); margin:4px 0 10px; }
details summary { cursor:pointer; color:var(--muted); margin-top:8px; }
footer { color:var(--muted); font-size:12px; margin-top:8px; }
code { font-family:"DejaVu Sans Mono", monospace; font-size:12px; }
"""
