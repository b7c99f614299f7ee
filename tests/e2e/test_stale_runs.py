"""Stale runs and freshness through the CLI: the real state-machine definition in the local emulator, on a real
PostgreSQL, judged by the oracle."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from chunking import seed
from tests import oracle
from tests.factories import late_owners, rejected, writes

pytestmark = pytest.mark.e2e

START, END = date(2026, 10, 1), date(2026, 10, 20)
WINDOW = ("--start", START.isoformat(), "--end", END.isoformat())
CHUNKS = ("--chunk-days", "3", "--max-chunk-rows", "1000000")
STALE_CHUNKS = ("--chunk-days", "2", "--max-chunk-rows", "1000000")


def test_stale_run_recomputes_only_the_days_an_edit_touches_and_then_nothing(conn, etl, tmp_path):
    # given a full run over twenty days
    seed.seed_visits(conn, visits=2_000, start=START, days=25, seed=41, caregiver_count=40)
    edited = START + timedelta(days=9)
    late_owners([edited - timedelta(days=2), edited - timedelta(days=1)], conn)  # owners that reach its daytime
    full = etl("run", "--local", *WINDOW, *CHUNKS, "--json")
    assert full.code == 0, full.err
    # when a visit starting in the daytime of the 10th day is cancelled and a stale run covers the window
    with conn.cursor() as cur:
        cur.execute("UPDATE analytics.visits SET status = 'CANCELLED' WHERE visit_id = "
                    "(SELECT min(visit_id) FROM analytics.visits WHERE visit_date = %s "
                    "AND coalesce(clock_in, scheduled_start) BETWEEN visit_date + interval '8 hours' "
                    "AND visit_date + interval '18 hours')", (edited,))
    conn.commit()
    shown = etl("freshness", *WINDOW, "--json")
    assert shown.code == 0, shown.err
    stale = [d["date"] for d in shown.json["days"] if d["state"] == "STALE"]
    # (the day, and the two before it: their latest owners end the day after, and can pair with its daytime)
    assert stale == [(edited - timedelta(days=k)).isoformat() for k in range(2, -1, -1)]
    assert {d["run_id"] for d in shown.json["days"]} == {full.json["run_id"]}
    # the plan preview shows the days a stale run would take now, and why, changing nothing
    preview = etl("plan", "--stale", *WINDOW, *STALE_CHUNKS, "--json")
    assert preview.code == 0, preview.err
    assert [(d["date"], d["reason"]) for d in preview.json["stale_days"]] == \
        [(d, "CHANGED" if d == edited.isoformat() else "DEPENDENT") for d in stale]
    assert [(c["chunk_start"], c["chunk_end"]) for c in preview.json["chunks"]] == \
        [(stale[0], stale[1]), (stale[2], stale[2])]
    shown_plan = etl("plan", "--stale", *WINDOW, *STALE_CHUNKS)
    assert "a stale run would recompute 3 days" in shown_plan.out
    assert f"{stale[0]}  STALE  depends on {edited.isoformat()}, whose visits changed" in shown_plan.out
    run = etl("run", "--local", "--stale", *WINDOW, *STALE_CHUNKS, "--json")
    # then it recomputed exactly those three days, in contiguous chunks, and the output is the oracle's
    assert run.code == 0, run.err
    summary = run.json
    assert (summary["status"], summary["chunks"], summary["days"]) == ("SUCCEEDED", 2, 3)
    assert 0 < summary["visits"] < full.json["visits"] / 3
    want, want_rejected = oracle.expected(oracle.load_visits(conn), START, END)
    assert oracle.actual(conn, START, END) == want
    assert {k: v for k, v in rejected(conn).items() if k in want_rejected} == want_rejected
    # the run's report says which days it recomputed because of which change
    import re

    page = etl("report", "--run-id", str(summary["run_id"]), "--out", str(tmp_path / "stale.html"))
    assert page.code == 0, page.err
    html = (tmp_path / "stale.html").read_text(encoding="utf-8")
    rows = re.findall(r'<tr data-day="([0-9-]+)" data-reason="(\w+)"><td class="date">[^<]*</td><td>([^<]*)</td>', html)
    assert [(d, r) for d, r, _ in rows] == [(d, "CHANGED" if d == edited.isoformat() else "DEPENDENT") for d in stale]
    assert rows[0][2] == f"depends on {edited.isoformat()}, whose visits changed"
    assert rows[-1][2] == "its visits changed"
    assert 'data-section="recomputed" data-days="3"' in html
    # and the freshness page draws the range as a calendar, each day linked to the report of its run
    calendar_page = etl("freshness", *WINDOW, "--html", str(tmp_path / "freshness.html"))
    assert calendar_page.code == 0, calendar_page.err
    drawn = (tmp_path / "freshness.html").read_text(encoding="utf-8")
    assert drawn.count('data-state="FRESH"') == 20 and f'href="run-{summary["run_id"]}-report.html"' in drawn
    # and every day is fresh again; a stale rerun plans nothing and writes nothing
    assert {d["state"] for d in etl("freshness", *WINDOW, "--json").json["days"]} == {"FRESH"}
    before = writes(conn)
    again = etl("run", "--local", "--stale", *WINDOW, "--json")
    assert again.code == 0, again.err
    assert (again.json["status"], again.json["chunks"], again.json["days"], again.json["visits"]) == \
        ("SUCCEEDED", 0, 0, 0)
    assert writes(conn) == before


def test_freshness_prints_a_calendar_and_never_computed_days(conn, etl):
    seed.seed_visits(conn, visits=500, start=START, days=10, seed=42)
    assert etl("run", "--local", "--start", "2026-10-01", "--end", "2026-10-05", "--json").code == 0
    shown = etl("freshness", "--start", "2026-09-28", "--end", "2026-10-08")
    assert shown.code == 0, shown.err
    assert "freshness 2026-09-28..2026-10-08: 5 FRESH, 6 NEVER" in shown.out
    assert "2026-09-28   -  -  -  .  .  .  ." in shown.out  # the week of Monday 28 September
    assert "2026-10-08  NEVER  never computed" in shown.out


def test_freshness_refuses_half_a_range(etl):
    result = etl("freshness", "--start", "2026-10-01")
    assert result.code == 2 and "give both --start and --end" in result.err


def test_a_stale_chunk_over_days_it_skips_fails_and_is_redriven_from_the_dead_letter_queue(conn, etl, monkeypatch):
    # given a full run, then daytime cancellations on two days nine days apart (each with the late owners before it
    # that reach its daytime), so that a stale run in chunks of up to 7 days owns them in one chunk with days between
    seed.seed_visits(conn, visits=2_000, start=START, days=25, seed=43, caregiver_count=40)
    edited = [START + timedelta(days=5), START + timedelta(days=14)]
    late_owners([d - timedelta(days=k) for d in edited for k in (2, 1)], conn)
    full = etl("run", "--local", *WINDOW, *CHUNKS, "--json")
    assert full.code == 0, full.err
    with conn.cursor() as cur:
        for day in edited:
            cur.execute("UPDATE analytics.visits SET status = 'CANCELLED' WHERE visit_id = "
                        "(SELECT min(visit_id) FROM analytics.visits WHERE visit_date = %s "
                        "AND coalesce(clock_in, scheduled_start) BETWEEN visit_date + interval '8 hours' "
                        "AND visit_date + interval '18 hours')", (day,))
    conn.commit()
    stale = [d["date"] for d in etl("freshness", *WINDOW, "--json").json["days"] if d["state"] == "STALE"]
    assert len(stale) == 6 and {d.isoformat() for d in edited} <= set(stale)
    # when the stale run's one chunk fails every attempt (a fault drill on its first day)
    for name, value in {"ETL_MAX_RECEIVE_COUNT": "2", "ETL_RETRY_BASE_MS": "50", "ETL_RETRY_MAX_MS": "100",
                        "ETL_FAULT_CHUNKS": stale[0]}.items():
        monkeypatch.setenv(name, value)
    failed = etl("run", "--local", "--stale", *WINDOW, "--chunk-days", "7", "--max-chunk-rows", "1000000", "--json")
    # then the run failed, naming the chunk's range; the preview of its redrive finds it in the dead-letter queue
    assert failed.code == 1 and failed.json["status"] == "FAILED"
    assert [(c["chunk_start"], c["chunk_end"]) for c in failed.json["failed_chunks"]] == [(stale[0], stale[-1])]
    dry = etl("redrive", "--run-id", str(failed.json["run_id"]), "--local", "--dry-run", "--json")
    assert [c["in_dead_letter_queue"] for c in dry.json["would_redrive"]] == [True]
    # and when the fault is gone and the run is redriven, it computes the six days, not the range's eighteen
    monkeypatch.delenv("ETL_FAULT_CHUNKS")
    redriven = etl("redrive", "--run-id", str(failed.json["run_id"]), "--local", "--json")
    assert redriven.code == 0, redriven.err
    assert (redriven.json["status"], redriven.json["chunks"], redriven.json["days"],
            redriven.json["dead_letters_removed"]) == ("SUCCEEDED", 1, 6, 1)
    shown = etl("freshness", *WINDOW, "--json").json["days"]
    assert {d["state"] for d in shown} == {"FRESH"}
    assert {d["date"] for d in shown if d["run_id"] == failed.json["run_id"]} == set(stale)
    # and the output is the oracle's: nothing of the days between was resolved or rewritten
    want, want_rejected = oracle.expected(oracle.load_visits(conn), START, END)
    assert oracle.actual(conn, START, END) == want
    assert {k: v for k, v in rejected(conn).items() if k in want_rejected} == want_rejected
