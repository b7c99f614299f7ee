"""The run report in a real browser. A local run through the real state-machine definition (and a failure
drill, then its redrive, or its abandonment), `etl-pipeline report` writes the page, and Debian's Chromium
renders it headless at 1400, 900 and 400 px: the screenshots are saved under tests/artifacts/ for a person to
look at, the DOM after load is checked against the ledger and the output tables, and a copy of the page with a
measuring script (the page itself has none) reports its layout: no sideways scroll, nothing wider than the
window, no text under 10 px, no two chart labels on top of each other."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import shutil
import subprocess
import uuid
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from chunking import ledger, report, seed

pytestmark = pytest.mark.e2e

START, END = "2026-10-01", "2026-10-04"
FAULTY_DAY = "2026-10-02"
FAST = {"ETL_MAX_RECEIVE_COUNT": "2", "ETL_RETRY_BASE_MS": "50", "ETL_RETRY_MAX_MS": "100"}
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WINDOW = (1400, 2400)
WIDTHS = (1400, 900, 400)
HEIGHT = 3000
# As root on a closed network, Chromium needs all of these, and a new empty profile, or it hangs.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")
GREEN, RED, RED_STRIPE = (0x2F, 0x9E, 0x5B), (0xD4, 0x3D, 0x3D), (0xB0, 0x2A, 0x2A)  # chunking.report colours
LEGEND_SWATCH_PX = 12 * 12


# --- the browser ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Chromium is not installed: `apt-get install -y chromium` (Debian; .ci/run installs it)")
    return path


def _chromium(chromium: str, tmp_path: Path, *args: str) -> str:
    profile = tmp_path / f"chromium-{uuid.uuid4().hex[:8]}"
    profile.mkdir()
    done = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _screenshot(chromium: str, tmp_path: Path, page: Path, name: str,
                window: tuple[int, int] = WINDOW) -> Image.Image:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / name
    png.unlink(missing_ok=True)
    _chromium(chromium, tmp_path, f"--screenshot={png}", f"--window-size={window[0]},{window[1]}", page.as_uri())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    return Image.open(png).convert("RGB")


def _pixels_near(image: Image.Image, color: tuple[int, int, int], tolerance: int = 6) -> int:
    return sum(n for n, rgb in image.getcolors(maxcolors=1 << 24) or []
               if all(abs(a - b) <= tolerance for a, b in zip(rgb, color, strict=True)))


def _red(image: Image.Image) -> int:
    return _pixels_near(image, RED) + _pixels_near(image, RED_STRIPE)


def _assert_real_image(image: Image.Image) -> None:
    assert image.size == WINDOW
    colors = image.getcolors(maxcolors=1 << 24) or []
    assert len(colors) > 200, f"only {len(colors)} distinct colours: a blank page?"
    # the page's own background does not fill it: there are cards, charts and text on it
    assert max(n for n, _ in colors) < 0.8 * WINDOW[0] * WINDOW[1]


# --- the DOM after load ----------------------------------------------------------------------------------------

@dataclasses.dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = dataclasses.field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        """Descendants with this tag (any if None) and every given attribute (``data_chunk`` for data-chunk;
        a value of "*" means present with any value)."""
        want = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and all(
                        k in child.attrs and (v == "*" or child.attrs[k] == v) for k, v in want.items()):
                    found.append(child)
                found.extend(child.all(tag, **attrs))
        return found

    def one(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag or '*'} {attrs}>, found {len(found)}"
        return found[0]


class _Builder(HTMLParser):
    VOID = {"meta", "link", "br", "img", "input", "hr", "col", "source", "wbr", "area", "base", "embed"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def _loaded_dom(chromium: str, tmp_path: Path, page: Path) -> Node:
    builder = _Builder()
    builder.feed(_chromium(chromium, tmp_path, "--dump-dom", page.as_uri()))
    return builder.root


# --- the layout, measured in the browser ------------------------------------------------------------------------

# Runs in a harness page around an iframe exactly `width` px wide (a headless window is at least 500 px), over
# the iframe's document: what the page's own layout does at that width, written into the harness's DOM.
PROBE = """
function probe(win, doc) {
  const visible = (el) => { const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && win.getComputedStyle(el).visibility !== "hidden"; };
  const name = (el) => el.tagName.toLowerCase() + (el.getAttribute("class") || "").split(" ").filter(Boolean)
    .map((c) => "." + c).join("");
  const W = win.innerWidth, wide = [], overlaps = {conflicts: [], timeline: []};
  let minFont = 1e9, minAt = "";
  for (const el of doc.body.querySelectorAll("*")) {
    if (!visible(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.right > W + 0.5 || r.left < -0.5) wide.push(name(el) + " " + Math.round(r.left) + ".." + Math.round(r.right));
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.closest("title")) continue;
    let size = parseFloat(win.getComputedStyle(el).fontSize);
    if (el.namespaceURI === "http://www.w3.org/2000/svg") size *= el.getScreenCTM().a;
    if (size < minFont) { minFont = size; minAt = name(el) + ": " + el.textContent.trim().slice(0, 40); }
  }
  for (const kind of ["conflicts", "timeline"]) {
    for (const svg of doc.querySelectorAll("svg." + kind)) {
      if (!visible(svg)) continue;
      const boxes = [...svg.querySelectorAll("text")].filter(visible).map((t) => [t.textContent,
                                                                                    t.getBoundingClientRect()]);
      for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
        const [a, ra] = boxes[i], [b, rb] = boxes[j];
        if (ra.left < rb.right && rb.left < ra.right && ra.top < rb.bottom && rb.top < ra.bottom)
          overlaps[kind].push(a + " | " + b);
      }
    }
  }
  const clipped = [];  // SVG text that runs past its drawing's edge (the SVG would cut it off)
  for (const svg of doc.querySelectorAll("svg")) {
    if (!visible(svg)) continue;
    const box = svg.getBoundingClientRect();
    for (const t of svg.querySelectorAll("text")) {
      const r = t.getBoundingClientRect();
      if (visible(t) && (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 ||
                         r.bottom > box.bottom + 0.5)) clipped.push(t.textContent);
    }
  }
  const shown = (sel) => [...doc.querySelectorAll(sel)].filter(visible);
  return {width: W, scrollWidth: doc.documentElement.scrollWidth, wide: wide, minFont: minFont, minFontAt: minAt,
          clipped: clipped,
          overlaps: overlaps, timelines: shown("svg.timeline").map((s) => s.dataset.variant),
          conflicts: shown("svg.conflicts").map((s) => s.dataset.variant),
          conflictValues: shown("svg.conflicts text.value").length,
          redrives: shown("svg.timeline g[data-mark=redrive]").map((g) => g.dataset.execution),
          next: shown("[data-next]").map((n) => n.dataset.next)};
}
const frame = document.getElementById("page");
frame.addEventListener("load", () => {
  document.getElementById("probe").textContent = JSON.stringify(probe(frame.contentWindow, frame.contentDocument));
});
"""


def _layout(chromium: str, tmp_path: Path, page: Path, width: int) -> dict:
    """The page's layout in an iframe ``width`` px wide, as the probe above measured it."""
    harness = tmp_path / f"probe-{width}-{page.name}"
    harness.write_text(
        '<!doctype html><html><body style="margin:0">'
        f'<iframe id="page" style="width:{width}px;height:{HEIGHT}px;border:0" '
        f'srcdoc="{html.escape(page.read_text(encoding="utf-8"), quote=True)}"></iframe>'
        f'<pre id="probe"></pre><script>{PROBE}</script></body></html>', encoding="utf-8")
    dom = _Builder()
    dom.feed(_chromium(chromium, tmp_path, "--virtual-time-budget=10000", f"--window-size={max(width, 500)},{HEIGHT}",
                       "--dump-dom", harness.as_uri()))
    text = dom.root.one("pre", id="probe").text()
    assert text, "the probe did not run"
    return json.loads(text)


def _assert_reads_at_every_width(chromium: str, tmp_path: Path, page: Path, name: str,
                                 charts: bool = True) -> dict[int, dict]:
    """Screenshots at 1400, 900 and 400 px kept as artifacts, and the layout checked at each width."""
    found = {}
    for width in WIDTHS:
        image = _screenshot(chromium, tmp_path, page, f"report-{name}-{width}.png", (width, HEIGHT))
        assert image.size == (width, HEIGHT)
        layout = _layout(chromium, tmp_path, page, width)
        assert layout["width"] == width
        assert layout["scrollWidth"] <= width, f"sideways scroll at {width} px: {layout['scrollWidth']}"
        assert layout["wide"] == [], f"wider than the window at {width} px: {layout['wide'][:5]}"
        assert layout["minFont"] >= 10, f"text of {layout['minFont']:.1f} px at {width} px: {layout['minFontAt']}"
        assert layout["overlaps"] == {"conflicts": [], "timeline": []}, f"labels collide at {width} px"
        assert layout["clipped"] == [], f"chart text cut off at {width} px"
        if charts:  # one drawing of each chart
            assert len(layout["timelines"]) == 1 and len(layout["conflicts"]) == 1, layout
        found[width] = layout
    # each width draws the charts at its own layout: the narrowest is not the widest scaled down
    assert not charts or found[1400]["timelines"] != found[400]["timelines"]
    return found


# --- the run, the page, the database ---------------------------------------------------------------------------

def _write_report(etl, tmp_path: Path, run_id: int, name: str) -> Path:
    page = tmp_path / name
    written = etl("report", "--run-id", str(run_id), "--out", str(page))
    assert written.code == 0, written.err
    assert f"run {run_id}" in written.out and str(page) in written.out
    text = page.read_text(encoding="utf-8")
    # self-contained: nothing to fetch, no script
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|\bhref=|@import", text, re.IGNORECASE)
    assert all(ref.startswith("#") for ref in re.findall(r"url\(([^)]*)\)", text))
    return page


def _query(conn, statement: str, params: dict) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(statement, params)
        rows = cur.fetchall()
    conn.rollback()
    return rows


def _window_rejections(conn) -> dict[str, int]:
    return dict(_query(conn, "SELECT reason, count(*) FROM conflict.rejected_visits "
                             "WHERE visit_date BETWEEN %(s)s AND %(e)s GROUP BY reason", {"s": START, "e": END}))


def _window_conflicts(conn) -> dict[str, dict[str, int]]:
    out = {d: {"OVERLAP": 0, "TRAVEL": 0} for d in ("2026-10-01", "2026-10-02", "2026-10-03", "2026-10-04")}
    for day, kind, n in _query(conn, "SELECT conflict_date, conflict_type, count(*) FROM conflict.conflict_visit_maps "
                                     "WHERE status = 'ACTIVE' AND conflict_date BETWEEN %(s)s AND %(e)s "
                                     "GROUP BY 1, 2", {"s": START, "e": END}):
        out[day.isoformat()][kind] = n
    return out


def _assert_page_matches_ledger(dom: Node, conn, run_id: int) -> None:
    """Every part of the page against the database: header, totals, timeline, chunks, throughput, charts."""
    run = ledger.get_run(conn, run_id)
    chunks = ledger.list_chunks(conn, run_id)
    attempts = ledger.list_attempts(conn, run_id)
    conn.rollback()

    header = dom.one("header", data_section="run")
    assert (header.attrs["data-run-id"], header.attrs["data-status"]) == (str(run_id), run["status"])
    assert header.one(data_fact="window").text().startswith(f"{START} .. {END}")
    assert header.one(data_fact="execution").text() == run["execution_name"]
    assert f"Run {run_id}" in dom.one("head").one("title").text()

    # the tiles: the run's totals, or for a run that did not finish its work the sums of its committed chunks
    totals = dom.one("section", data_section="totals")
    expected = dict(run) if run["status"] == "SUCCEEDED" else {**_committed_sums(conn, run_id),
                                                               "rejected_rows": sum(_window_rejections(conn).values())}
    assert ("data-partial" in totals.attrs) == (run["status"] != "SUCCEEDED")
    for key, column in [("visits", "visits"), *((k, k) for k in ("inserted", "updated", "resolved", "reopened",
                                                                   "unchanged")), ("rejected", "rejected_rows")]:
        card = totals.one(data_total=key)
        assert card.attrs["data-value"] == str(expected[column]), key
        assert f"{expected[column]:,}" in card.text()

    # the timeline, in each of its drawings: one mark per attempt, in its worker's lane, coloured by its outcome
    for timeline in dom.one("section", data_section="timeline").all("svg", data_variant="*"):
        _assert_timeline_matches(timeline, attempts, chunks)
    _assert_tables_and_charts_match(dom, conn, run, chunks)


def _committed_sums(conn, run_id: int) -> dict[str, int]:
    (row,) = _query(conn, "SELECT coalesce(sum(visits), 0), coalesce(sum(inserted), 0), coalesce(sum(updated), 0), "
                          "coalesce(sum(resolved), 0), coalesce(sum(reopened), 0), coalesce(sum(unchanged), 0) "
                          "FROM etl.chunks WHERE run_id = %(r)s AND status = 'SUCCEEDED'", {"r": run_id})
    return dict(zip(("visits", "inserted", "updated", "resolved", "reopened", "unchanged"), row, strict=True))


def _assert_timeline_matches(timeline: Node, attempts: list[dict], chunks: list[dict]) -> None:
    marks = timeline.all("g", data_attempt="*")
    assert sorted((int(m.attrs["data-chunk"]), int(m.attrs["data-attempt"]), m.attrs["data-outcome"],
                   m.attrs["data-worker"]) for m in marks) == \
        sorted((a["chunk_id"], a["attempt"], a["outcome"], a["worker"]) for a in attempts)
    for lane in timeline.all("g", data_worker="*"):
        if "data-attempts" in lane.attrs:
            inside = lane.all("g", data_attempt="*")
            assert {m.attrs["data-worker"] for m in inside} == {lane.attrs["data-worker"]}
            assert len(inside) == int(lane.attrs["data-attempts"])
    lanes = {lane.attrs["data-worker"] for lane in timeline.all("g", data_attempts="*")}
    assert lanes == {a["worker"] for a in attempts}
    assert all(re.fullmatch(r"chunk-worker-\d+", w) for w in lanes)  # local workers are named by their thread
    for mark in marks:  # each one labelled with its attempt number
        assert f"#{mark.attrs['data-attempt']}" in mark.text()
    assert timeline.all("text", class_="tick"), "no time axis"
    # the run's own steps before its chunks are on it too, from the run's start
    steps = timeline.one("g", data_lane="steps").all("g", data_step="*")
    assert steps and {s.attrs["data-step"] for s in steps} <= {"stage", "plan", "prelude"}
    # every chunk of the run is on the timeline
    assert {m.attrs["data-chunk"] for m in marks} == {str(c["chunk_id"]) for c in chunks}


def _assert_tables_and_charts_match(dom: Node, conn, run: dict, chunks: list[dict]) -> None:
    """The rows and throughput of every chunk, the rejections and the conflicts per day."""
    ids = {str(c["chunk_id"]) for c in chunks}
    table = dom.one("section", data_section="rows-per-chunk")
    rows = {r.attrs["data-chunk"]: r for r in table.all("tr", data_chunk="*")}
    rates = {r.attrs["data-chunk"]: r for r in dom.one("section", data_section="throughput").all(data_chunk="*")}
    assert set(rows) == set(rates) == ids
    for c in chunks:
        row = rows[str(c["chunk_id"])]
        assert row.attrs["data-status"] == c["status"]
        for key in ("visits", "inserted", "updated", "resolved", "reopened", "unchanged"):
            assert row.attrs[f"data-{key}"] == str(c[key] or 0), (c["chunk_id"], key)
        rate = rates[str(c["chunk_id"])].attrs["data-visits-per-second"]
        if c["status"] == "SUCCEEDED":
            assert float(rate) == pytest.approx(c["visits"] * 1000 / c["duration_ms"], abs=0.06)
        else:
            assert rate == ""

    rejections = dom.one("section", data_section="rejections")
    shown = {r.attrs["data-reason"]: int(r.attrs["data-count"]) for r in rejections.all(data_reason="*")}
    assert shown == _window_rejections(conn)
    assert sum(shown.values()) == run["rejected_rows"] > 0

    for chart in dom.one("section", data_section="conflicts").all("svg", data_variant="*"):
        _assert_conflicts_match(chart, conn, chunks)


def _assert_conflicts_match(chart: Node, conn, chunks: list[dict]) -> None:
    days = chart.all("g", data_date="*")
    assert {d.attrs["data-date"]: {"OVERLAP": int(d.attrs["data-overlap"]), "TRAVEL": int(d.attrs["data-travel"])}
            for d in days} == _window_conflicts(conn)
    assert [d.attrs["data-date"] for d in days] == ["2026-10-01", "2026-10-02", "2026-10-03", "2026-10-04"]
    succeeded = {str(c["chunk_start"]) for c in chunks if c["status"] == "SUCCEEDED"}  # one-day chunks
    assert {d.attrs["data-date"]: d.attrs["data-recomputed"] for d in days} == \
        {d.attrs["data-date"]: "yes" if d.attrs["data-date"] in succeeded else "no" for d in days}


@pytest.fixture
def population(conn):
    seed.seed_visits(conn, visits=1_500, start=date(2026, 10, 1), days=4, seed=61)


def test_report_of_a_clean_run_shows_every_attempt_chunk_and_count(conn, etl, population, chromium, tmp_path):
    # given a successful local run in one-day chunks, two at a time
    ran = etl("run", "--local", "--start", START, "--end", END, "--chunk-days", "1", "--max-concurrency", "2",
              "--json")
    assert ran.code == 0, ran.err
    run_id = ran.json["run_id"]
    assert (ran.json["status"], ran.json["chunks"]) == ("SUCCEEDED", 4)
    # when its report is written and opened in a headless browser
    page = _write_report(etl, tmp_path, run_id, "clean.html")
    image = _screenshot(chromium, tmp_path, page, "report-clean-run.png")
    dom = _loaded_dom(chromium, tmp_path, page)
    # then the page shows the run as the database has it
    _assert_page_matches_ledger(dom, conn, run_id)
    assert not dom.all("g", data_outcome="FAILED")
    lanes = {lane.attrs["data-worker"] for lane in dom.all("g", data_attempts="*")}
    assert lanes <= {"chunk-worker-1", "chunk-worker-2"}  # --max-concurrency 2: two workers at most
    assert not dom.all(data_fact="error")
    assert not dom.all(data_next="*")  # nothing to continue
    # and what the browser drew is a real picture with the succeeded bars on it
    _assert_real_image(image)
    assert _pixels_near(image, GREEN) > 2_000
    assert _red(image) < LEGEND_SWATCH_PX  # nothing failed: only the legend's swatch is red
    # and it reads at 1400, 900 and 400 px
    _assert_reads_at_every_width(chromium, tmp_path, page, "clean")


def _failure_drill(conn, etl, monkeypatch) -> tuple[int, dict]:
    """A local run whose chunk of Oct 2 fails every attempt: its run id and that chunk."""
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ETL_FAULT_CHUNKS", FAULTY_DAY)
    failed = etl("run", "--local", "--start", START, "--end", END, "--chunk-days", "1", "--max-concurrency", "2",
                 "--json")
    assert failed.code == 1 and failed.json["status"] == "FAILED"
    run_id = failed.json["run_id"]
    bad = next(c for c in ledger.list_chunks(conn, run_id) if str(c["chunk_start"]) == FAULTY_DAY)
    conn.rollback()
    monkeypatch.delenv("ETL_FAULT_CHUNKS")
    return run_id, bad


def _timelines(dom: Node) -> list[Node]:
    drawings = dom.one("section", data_section="timeline").all("svg", data_variant="*")
    assert len(drawings) == 4
    return drawings


def test_report_of_a_failure_drill_marks_failed_attempts_then_the_redrive(conn, etl, population, chromium, tmp_path,
                                                                           monkeypatch):
    # given a run whose chunk of Oct 2 fails every attempt
    run_id, bad = _failure_drill(conn, etl, monkeypatch)
    # when its report is opened in the browser
    page = _write_report(etl, tmp_path, run_id, "failed.html")
    image = _screenshot(chromium, tmp_path, page, "report-failed-run.png")
    dom = _loaded_dom(chromium, tmp_path, page)
    # then it shows the failure: the run's error, both failed attempts of the chunk marked, and their errors
    _assert_page_matches_ledger(dom, conn, run_id)
    error = dom.one(data_fact="error").text()
    assert FAULTY_DAY in error and "fault drill" in error
    for timeline in _timelines(dom):
        marks = timeline.all("g", data_outcome="FAILED")
        assert sorted((m.attrs["data-chunk"], m.attrs["data-attempt"]) for m in marks) == \
            [(str(bad["chunk_id"]), "1"), (str(bad["chunk_id"]), "2")]
        assert all("✕" in m.text() for m in marks)
    failures = dom.one("section", data_section="attempts").one("h3")
    assert "did not succeed (2)" in failures.text()
    assert "fault drill" in dom.one("section", data_section="attempts").text()
    assert dom.one("section", data_section="rows-per-chunk").one("tr", data_chunk=str(bad["chunk_id"])) \
        .attrs["data-status"] == "FAILED"
    # and it says how to continue: the exact redrive command
    nxt = dom.one("header", data_section="run").one(data_next="*")
    assert nxt.attrs["data-next"] == f"etl-pipeline redrive --run-id {run_id}"
    assert [c.text() for c in nxt.all("code")] == [f"etl-pipeline redrive --run-id {run_id}",
                                                 f"etl-pipeline redrive --run-id {run_id} --dry-run"]
    _assert_real_image(image)
    assert _red(image) > 10 * LEGEND_SWATCH_PX
    layouts = _assert_reads_at_every_width(chromium, tmp_path, page, "failed")
    assert all(layout["next"] == [f"etl-pipeline redrive --run-id {run_id}"] for layout in layouts.values())

    # and after the redrive, the same run's report shows the two failures and the success that followed
    before = datetime.now(UTC)
    redriven = etl("redrive", "--run-id", str(run_id), "--local")
    assert redriven.code == 0, redriven.err
    (name,) = re.findall(rf"of run {run_id} as execution (\S+)", redriven.err)
    run = ledger.get_run(conn, run_id)
    conn.rollback()
    assert run["status"] == "SUCCEEDED"
    # the ledger recorded both executions that drove the run
    with conn.cursor() as cur:
        cur.execute("SELECT execution_name, kind, started_at FROM etl.run_executions WHERE run_id = %s "
                    "ORDER BY started_at", (run_id,))
        executions = cur.fetchall()
    conn.rollback()
    assert [(e, k) for e, k, _ in executions] == [(run["execution_name"], "run"), (name, "redrive")]
    assert executions[1][2] >= before
    page = _write_report(etl, tmp_path, run_id, "redriven.html")
    image = _screenshot(chromium, tmp_path, page, "report-redriven-run.png")
    dom = _loaded_dom(chromium, tmp_path, page)
    _assert_page_matches_ledger(dom, conn, run_id)
    for timeline in _timelines(dom):
        assert [m.attrs["data-outcome"] for m in sorted(timeline.all("g", data_chunk=str(bad["chunk_id"])),
                                                        key=lambda m: int(m.attrs["data-attempt"]))] == \
            ["FAILED", "FAILED", "SUCCEEDED"]
        # the redrive is marked where it began, with its execution name, after the failed attempts
        (marker,) = timeline.all("g", data_mark="redrive")
        assert marker.attrs["data-execution"] == name and name in marker.one("title").text()
        (line,) = marker.all("line")
        failed_x = [float(m.one("rect").attrs["x"]) for m in timeline.all("g", data_outcome="FAILED")]
        assert float(line.attrs["x1"]) > max(failed_x)
    assert dom.one("ol", data_executions="2").one("li", data_kind="redrive").attrs["data-execution"] == name
    assert not dom.all(data_next="*")
    _assert_real_image(image)
    assert _pixels_near(image, GREEN) > 2_000 and _red(image) > 10 * LEGEND_SWATCH_PX
    layouts = _assert_reads_at_every_width(chromium, tmp_path, page, "redriven")
    assert all(layout["redrives"] == [name] for layout in layouts.values())


def test_report_of_an_abandoned_run_shows_partial_totals_and_how_to_run_again(conn, etl, population, chromium,
                                                                             tmp_path, monkeypatch):
    # given a failed run that is abandoned instead of redriven
    run_id, _ = _failure_drill(conn, etl, monkeypatch)
    abandoned = etl("abandon", "--run-id", str(run_id))
    assert abandoned.code == 0, abandoned.err
    # when its report is opened in the browser
    page = _write_report(etl, tmp_path, run_id, "abandoned.html")
    dom = _loaded_dom(chromium, tmp_path, page)
    # then its tiles are the sums of the three chunks that committed, said to be partial, never "-"
    _assert_page_matches_ledger(dom, conn, run_id)
    totals = dom.one("section", data_section="totals")
    assert "partial: the sums of the 3 of 4 chunks that committed" in totals.one("h2").text()
    assert all("-" not in c.one("div", class_="num").text() for c in totals.all(data_total="*"))
    assert int(totals.one(data_total="visits").attrs["data-value"]) > 0
    # and it says what to type next: a new run over the same window
    nxt = dom.one(data_next="*")
    assert nxt.attrs["data-next"] == f"etl-pipeline run --local --start {START} --end {END}"
    assert "cannot be redriven" in nxt.text()
    layouts = _assert_reads_at_every_width(chromium, tmp_path, page, "abandoned")
    assert all(layout["next"] == [nxt.attrs["data-next"]] for layout in layouts.values())


def test_report_of_an_unknown_run_fails_with_one_line_and_writes_nothing(conn, etl, tmp_path):
    page = tmp_path / "none.html"
    result = etl("report", "--run-id", "999", "--out", str(page))
    assert result.code == 2
    assert result.err.strip() == "etl-pipeline report: error: no run 999 in the ledger"
    assert not page.exists()


def test_report_of_a_run_still_staging_is_written_and_an_unwritable_path_is_one_line(conn, etl, tmp_path):
    # given a run that has begun and planned nothing yet
    run = ledger.begin_run(conn, execution_name="nightly-2026-10-05", trigger="schedule", executor="elsewhere",
                           window_start=date(2026, 10, 1), window_end=date(2026, 10, 4), chunk_days=1,
                           max_chunk_rows=100, max_concurrency=2)
    # when its report is written
    page = _write_report(etl, tmp_path, run["run_id"], "live.html")
    # then it says where the run is, with no timeline yet
    text = page.read_text(encoding="utf-8")
    assert 'data-status="RUNNING"' in text and "Staging and planning: no chunks yet." in text
    assert "No chunk attempts recorded." in text and 'data-attempt="' not in text
    # and a path that cannot be written is a one-line error
    result = etl("report", "--run-id", str(run["run_id"]), "--out", str(tmp_path / "missing" / "r.html"))
    assert result.code == 2
    assert result.err.startswith("etl-pipeline report: error: cannot write the report to ")
    assert len(result.err.strip().splitlines()) == 1


def test_a_month_of_busy_days_keeps_its_chart_labels_apart_at_every_width(chromium, tmp_path):
    # given a page drawn from hand-built data: 31 days of four-digit conflict counts, a day far above the rest,
    # eleven three-day chunks and a redrive seven hours later with a long execution name
    t0 = datetime(2026, 10, 8, 2, 30, tzinfo=UTC)
    at = lambda s: t0 + timedelta(seconds=s)  # noqa: E731
    chunks = [report.Chunk(i, date(2026, 10, 1) + timedelta(days=3 * (i - 1)),
                           min(date(2026, 10, 1) + timedelta(days=3 * i - 1), date(2026, 10, 31)), "SUCCEEDED", 1,
                           18_000 + i, 100 + i, 1, 0, 0, 5, duration_ms=2_000 + 150 * i) for i in range(1, 12)]
    attempts = [report.Attempt(i, 1, at(1 + i * 0.4), f"chunk-worker-{i % 4 + 1}", at(3 + i * 0.55), "SUCCEEDED")
                for i in range(1, 12) if i != 2]
    attempts += [report.Attempt(2, 1, at(1.8), "chunk-worker-3", at(2.1), "FAILED", "TransientError", "boom"),
                 report.Attempt(2, 2, at(7 * 3600 + 2), "chunk-worker-1", at(7 * 3600 + 4), "SUCCEEDED")]
    run = report.Run(7, "nightly-2026-10-08T023000-a1b2", "schedule", "SUCCEEDED", date(2026, 10, 1),
                     date(2026, 10, 31), t0, redrives=1, staged_at=at(7 * 3600 + 1), finished_at=at(7 * 3600 + 5),
                     visits=198_000, inserted=1_166, updated=11, resolved=0, reopened=0, unchanged=55, rejected_rows=9)
    days = [report.ConflictDay(date(2026, 10, d), 1_000 + (d * 397) % 2_000 + (9_000 if d == 9 else 0), d * 3)
            for d in range(1, 32)]
    redrive = "redrive-7-1-20261008T093000-0123456789abcdef-a-long-execution-name"
    data = report.ReportData(run, chunks, attempts, [report.Rejection("DURATION_OVER_24H", 9)], days,
                             generated_at=at(8 * 3600), executions=[
                                 report.Execution(run.execution_name, "run", t0),
                                 report.Execution(redrive, "redrive", at(7 * 3600))])
    page = tmp_path / "busy.html"
    page.write_text(report.render(data), encoding="utf-8")
    # when it is opened at 1400, 900 and 400 px, then it reads at each, labels apart
    layouts = _assert_reads_at_every_width(chromium, tmp_path, page, "busy-month")
    # and the busiest days still carry their value, more of them where there is room
    counts = [layouts[w]["conflictValues"] for w in WIDTHS]
    assert all(n >= 1 for n in counts) and counts[1] >= counts[2]
    assert all(layout["redrives"] == [redrive] for layout in layouts.values())


@dataclasses.dataclass(frozen=True)
class _Day:
    date: date
    state: str
    run_id: int | None
    computed_at: datetime | None
    reason: str | None


def test_the_freshness_calendar_reads_at_every_width(chromium, tmp_path):
    # given nine weeks of days, most fresh, some stale with a reason, a few never computed
    start = date(2026, 9, 3)
    days = [_Day(start + timedelta(days=i), state, None if state == "NEVER" else 10 + i // 7,
                 None if state == "NEVER" else datetime(2026, 11, 1, tzinfo=UTC),
                 "its visits changed since it was computed" if state == "STALE" else None)
            for i, state in enumerate(("NEVER" if i < 3 else "STALE" if i % 9 == 4 else "FRESH") for i in range(60))]
    page = tmp_path / "freshness.html"
    page.write_text(report.render_freshness(days, title="Conflict map freshness"), encoding="utf-8")
    # when it is opened in the browser, then it reads at 1400, 900 and 400 px
    _assert_reads_at_every_width(chromium, tmp_path, page, "freshness", charts=False)
    dom = _loaded_dom(chromium, tmp_path, page)
    cells = dom.all(data_date="*")
    assert [c.attrs["data-date"] for c in cells] == [d.date.isoformat() for d in days]
    assert {c.attrs["href"] for c in cells if c.tag == "a"} == {f"run-{d.run_id}-report.html" for d in days
                                                                if d.run_id is not None}
    assert [c.attrs["data-state"] for c in cells if c.tag != "a"] == ["NEVER"] * 3
