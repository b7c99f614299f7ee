"""The run report in a real browser. A local run through the real state-machine definition (and a failure
drill, then its redrive), `etl-pipeline report` writes the page, and Debian's Chromium renders it headless:
the screenshot is saved under tests/artifacts/ for a person to look at, and the DOM after load is checked
against the ledger and the output tables."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import uuid
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from chunking import ledger, seed

pytestmark = pytest.mark.e2e

START, END = "2026-10-01", "2026-10-04"
FAULTY_DAY = "2026-10-02"
FAST = {"ETL_MAX_RECEIVE_COUNT": "2", "ETL_RETRY_BASE_MS": "50", "ETL_RETRY_MAX_MS": "100"}
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WINDOW = (1400, 2400)
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


def _screenshot(chromium: str, tmp_path: Path, page: Path, name: str) -> Image.Image:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / name
    png.unlink(missing_ok=True)
    _chromium(chromium, tmp_path, f"--screenshot={png}", f"--window-size={WINDOW[0]},{WINDOW[1]}", page.as_uri())
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

    totals = dom.one("section", data_section="totals")
    for key, column in [("visits", "visits"), *((k, k) for k in ("inserted", "updated", "resolved", "reopened",
                                                                   "unchanged")), ("rejected", "rejected_rows")]:
        card = totals.one(data_total=key)
        assert card.attrs["data-value"] == str(run[column]), key
        assert f"{run[column]:,}" in card.text()

    # the timeline: one mark per attempt, in its worker's lane, coloured by its outcome
    timeline = dom.one("section", data_section="timeline").one("svg")
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

    # every chunk of the run is on the timeline and in the rows and throughput charts
    ids = {str(c["chunk_id"]) for c in chunks}
    assert {m.attrs["data-chunk"] for m in marks} == ids
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

    days = dom.one("section", data_section="conflicts").all("g", data_date="*")
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
    # and what the browser drew is a real picture with the succeeded bars on it
    _assert_real_image(image)
    assert _pixels_near(image, GREEN) > 2_000
    assert _red(image) < LEGEND_SWATCH_PX  # nothing failed: only the legend's swatch is red


def test_report_of_a_failure_drill_marks_failed_attempts_then_the_redrive(conn, etl, population, chromium, tmp_path,
                                                                           monkeypatch):
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    # given a run whose chunk of Oct 2 fails every attempt
    monkeypatch.setenv("ETL_FAULT_CHUNKS", FAULTY_DAY)
    failed = etl("run", "--local", "--start", START, "--end", END, "--chunk-days", "1", "--max-concurrency", "2",
                 "--json")
    assert failed.code == 1 and failed.json["status"] == "FAILED"
    run_id = failed.json["run_id"]
    bad = next(c for c in ledger.list_chunks(conn, run_id) if str(c["chunk_start"]) == FAULTY_DAY)
    conn.rollback()
    # when its report is opened in the browser
    page = _write_report(etl, tmp_path, run_id, "failed.html")
    image = _screenshot(chromium, tmp_path, page, "report-failed-run.png")
    dom = _loaded_dom(chromium, tmp_path, page)
    # then it shows the failure: the run's error, both failed attempts of the chunk marked, and their errors
    _assert_page_matches_ledger(dom, conn, run_id)
    error = dom.one(data_fact="error").text()
    assert FAULTY_DAY in error and "fault drill" in error
    marks = dom.one("section", data_section="timeline").all("g", data_outcome="FAILED")
    assert sorted((m.attrs["data-chunk"], m.attrs["data-attempt"]) for m in marks) == \
        [(str(bad["chunk_id"]), "1"), (str(bad["chunk_id"]), "2")]
    assert all("✕" in m.text() for m in marks)
    failures = dom.one("section", data_section="attempts").one("h3")
    assert "did not succeed (2)" in failures.text()
    assert "fault drill" in dom.one("section", data_section="attempts").text()
    assert dom.one("section", data_section="rows-per-chunk").one("tr", data_chunk=str(bad["chunk_id"])) \
        .attrs["data-status"] == "FAILED"
    _assert_real_image(image)
    assert _red(image) > 10 * LEGEND_SWATCH_PX

    # and after the redrive, the same run's report shows the two failures and the success that followed
    monkeypatch.delenv("ETL_FAULT_CHUNKS")
    redriven = etl("redrive", "--run-id", str(run_id), "--local", "--json")
    assert redriven.code == 0 and redriven.json["status"] == "SUCCEEDED", redriven.err
    page = _write_report(etl, tmp_path, run_id, "redriven.html")
    image = _screenshot(chromium, tmp_path, page, "report-redriven-run.png")
    dom = _loaded_dom(chromium, tmp_path, page)
    _assert_page_matches_ledger(dom, conn, run_id)
    assert [m.attrs["data-outcome"] for m in sorted(
        dom.one("section", data_section="timeline").all("g", data_chunk=str(bad["chunk_id"])),
        key=lambda m: int(m.attrs["data-attempt"]))] == ["FAILED", "FAILED", "SUCCEEDED"]
    _assert_real_image(image)
    assert _pixels_near(image, GREEN) > 2_000 and _red(image) > 10 * LEGEND_SWATCH_PX


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
