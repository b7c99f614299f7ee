"""The benchmark of issue 10: is asking "what is stale" cheap, and is a stale run after a few edits cheap?

    .venv/bin/python -m bench.freshness_bench [--visits-per-day 11100] [--days 90] [--caregivers 5000]
                                              [--edited-days 3] [--repeats 3] [--database-url URL]

On its own database (created on the server $DATABASE_URL names, else the embedded PostgreSQL, dropped at the end),
with one generated population over a horizon of ``--days`` days (plus the partner days after it), it times:

0. a warm-up: a run over the day before the population (no visits), so that every timed run below finds the process
   as warm as the next (its imports, the emulator's models): the first run of a process also pays 0.7-0.8 s of them,
   which would otherwise count in the full run alone and flatter every ratio to it;
1. a full run over the horizon (``etl-pipeline run --local``: the emulator, the real ASL, workers, adaptive chunks,
   concurrency 2), which also records every day's fingerprint;
2. the freshness check over the horizon (``freshness.day_states``, the query ``etl-pipeline freshness`` runs),
   ``--repeats`` times, median;
3. edits on ``--edited-days`` days spread over the horizon (a few visits cancelled, clocks moved on each), then
   ``run --local --stale`` over the horizon;
4. a stale rerun with nothing stale; edits on the last ``--edited-days`` days of the horizon (adjacent, the common
   case of late corrections) and a stale run; then a full rerun that must write nothing (the stale runs left what a
   full run would: the check of correctness), timed too;
5. as a user times a command: a fresh ``etl-pipeline run --local --stale`` process with nothing stale, whose time
   beyond the warm rerun's is what every process pays to start (interpreter, imports, emulator); the ratios are also
   given with it added to both runs.

Ratios are to (1). Results: a Markdown report on stdout, and the samples as JSON under bench/results/."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2

from bench.run_bench import _environ, own_database
from chunking import cli, db, freshness, seed, tasks

RESULTS_DIR = Path(__file__).resolve().parent / "results"
START = date(2026, 6, 1)


def run_cli(url: str, *argv: str) -> tuple[float, dict[str, Any]]:
    out, err = io.StringIO(), io.StringIO()
    began = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([*argv, "--json", "--database-url", url])
    seconds = time.perf_counter() - began
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (exit {code}): {err.getvalue()[-2000:]}")
    return seconds, json.loads(out.getvalue().strip().splitlines()[-1])


def run_process(url: str, *argv: str) -> float:
    """Seconds of one ``etl-pipeline`` command as its own process (the venv's script, as a user runs it)."""
    script = Path(sys.executable).with_name("etl-pipeline")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "chunking.cli"]
    began = time.perf_counter()
    subprocess.run([*command, *argv, "--json", "--database-url", url], check=True, capture_output=True)
    return time.perf_counter() - began


def one(cur: Any) -> Any:
    row = cur.fetchone()
    assert row is not None
    return row[0]


def edit_days(conn: psycopg2.extensions.connection, days: list[date]) -> int:
    """On each day: cancel five visits and move the clock-out of five others by 25 minutes (upstream corrections)."""
    edited = 0
    with conn.cursor() as cur:
        for day in days:
            cur.execute("UPDATE analytics.visits SET status = 'CANCELLED' WHERE visit_id IN (SELECT visit_id FROM "
                        "analytics.visits WHERE visit_date = %s AND status <> 'CANCELLED' ORDER BY visit_id LIMIT 5)",
                        (day,))
            edited += cur.rowcount
            cur.execute("UPDATE analytics.visits SET clock_out = coalesce(clock_out, scheduled_end) + interval "
                        "'25 minutes' WHERE visit_id IN (SELECT visit_id FROM analytics.visits WHERE visit_date = %s "
                        "AND status <> 'CANCELLED' ORDER BY visit_id DESC LIMIT 5)", (day,))
            edited += cur.rowcount
    conn.commit()
    return edited


def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    conn = psycopg2.connect(url)
    horizon_end = START + timedelta(days=args.days - 1)
    population_days = args.days + tasks.PARTNER_DAYS
    began = time.perf_counter()
    seed.seed_visits(conn, visits=args.visits_per_day * population_days, start=START, days=population_days,
                     seed=10, caregiver_count=args.caregivers)
    seeded_s = time.perf_counter() - began
    window = ("--start", START.isoformat(), "--end", horizon_end.isoformat())
    before = (START - timedelta(days=1)).isoformat()
    warm_up_s, _ = run_cli(url, "run", "--local", "--start", before, "--end", before, "--max-concurrency", "2")
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM analytics.visits WHERE visit_date BETWEEN %s AND %s", (START, horizon_end))
        visits = int(one(cur))
    conn.rollback()

    full_s, full = run_cli(url, "run", "--local", *window, "--max-concurrency", "2")
    checks = []
    for _ in range(args.repeats):
        began = time.perf_counter()
        states = freshness.day_states(conn, START, horizon_end)
        checks.append(time.perf_counter() - began)
    assert {s.state for s in states} == {"FRESH"}, "after a full run every day of it is fresh"

    step = args.days // (args.edited_days + 1)
    edited = [START + timedelta(days=step * (i + 1)) for i in range(args.edited_days)]
    rows_edited = edit_days(conn, edited)
    began = time.perf_counter()
    stale_days = [s.date for s in freshness.day_states(conn, START, horizon_end) if s.state != "FRESH"]
    check_after_edits_s = time.perf_counter() - began
    stale_s, stale = run_cli(url, "run", "--local", "--stale", *window, "--max-concurrency", "2")
    rerun_s, rerun = run_cli(url, "run", "--local", "--stale", *window, "--max-concurrency", "2")
    adjacent = [horizon_end - timedelta(days=i) for i in range(args.edited_days)]  # the latest days: late clock-outs
    rows_edited_adjacent = edit_days(conn, adjacent)
    adjacent_s, adjacent_run = run_cli(url, "run", "--local", "--stale", *window, "--max-concurrency", "2")
    full_rerun_s, full_rerun = run_cli(url, "run", "--local", *window, "--max-concurrency", "2")
    process_s = run_process(url, "run", "--local", "--stale", *window, "--max-concurrency", "2")
    writes = {k: full_rerun[k] for k in ("inserted", "updated", "resolved", "reopened")}
    assert writes == dict.fromkeys(writes, 0), f"a full run after the stale run wrote {writes}"
    assert rerun["chunks"] == 0 and stale["days"] == len(stale_days)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM etl.source_fingerprints")
        fingerprint_rows = int(one(cur))
        cur.execute("SHOW server_version")
        server = str(one(cur))
    conn.close()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": f"{platform.machine()}, "
        f"{os.cpu_count()} cores", "postgres": server, "python": platform.python_version(),
        "horizon_days": args.days, "visits_in_horizon": visits, "visits_seeded": args.visits_per_day * population_days,
        "seed_s": round(seeded_s, 2), "caregivers": args.caregivers,
        "full_run": {"seconds": round(full_s, 2), "chunks": full["chunks"], "visits": full["visits"],
                     "inserted": full["inserted"], "rejected": full["rejected"]},
        "freshness_check_s": [round(s, 3) for s in checks],
        "freshness_check_after_edits_s": round(check_after_edits_s, 3),
        "edited_days": [d.isoformat() for d in edited], "rows_edited": rows_edited,
        "stale_days": [d.isoformat() for d in stale_days],
        "stale_run": {"seconds": round(stale_s, 2), "chunks": stale["chunks"], "days": stale["days"],
                      "visits": stale["visits"], **{k: stale[k] for k in ("inserted", "updated", "resolved",
                                                                         "reopened", "unchanged")}},
        "stale_rerun": {"seconds": round(rerun_s, 2), "chunks": rerun["chunks"]},
        "adjacent_edited_days": [d.isoformat() for d in adjacent], "rows_edited_adjacent": rows_edited_adjacent,
        "stale_run_adjacent": {"seconds": round(adjacent_s, 2), "chunks": adjacent_run["chunks"],
                               "days": adjacent_run["days"], "visits": adjacent_run["visits"]},
        "full_rerun": {"seconds": round(full_rerun_s, 2), **writes},
        "warm_up_s": round(warm_up_s, 2), "stale_rerun_process_s": round(process_s, 2),
        "fingerprint_rows": fingerprint_rows,
    }


def report(r: dict[str, Any]) -> str:
    full = r["full_run"]["seconds"]
    check = statistics.median(r["freshness_check_s"])
    start_s = max(0.0, r["stale_rerun_process_s"] - r["stale_rerun"]["seconds"])
    lines = [
        f"# Freshness benchmark ({r['when']}, {r['machine']}, PostgreSQL {r['postgres']}, Python {r['python']})", "",
        f"{r['visits_in_horizon']:,} visits over a {r['horizon_days']}-day horizon ({r['visits_seeded']:,} seeded "
        f"with the partner days after it), {r['caregivers']:,} caregivers.", "",
        "| measurement | seconds | ratio to the full run | notes |", "| --- | ---: | ---: | --- |",
        f"| full run over the horizon | {full:.2f} | 1 | {r['full_run']['chunks']} chunks, "
        f"{r['full_run']['inserted']:,} conflicts, fingerprints recorded |",
        f"| freshness check (median of {len(r['freshness_check_s'])}) | {check:.3f} | {check / full:.4f} | every day "
        "FRESH |",
        f"| freshness check after the edits | {r['freshness_check_after_edits_s']:.3f} | "
        f"{r['freshness_check_after_edits_s'] / full:.4f} | {len(r['stale_days'])} days STALE |",
        f"| stale run after edits on {len(r['edited_days'])} days | {r['stale_run']['seconds']:.2f} | "
        f"{r['stale_run']['seconds'] / full:.3f} | {r['stale_run']['chunks']} chunks, {r['stale_run']['days']} days, "
        f"{r['stale_run']['visits']:,} visits; {r['rows_edited']} rows edited |",
        f"| stale run after edits on the last {len(r['adjacent_edited_days'])} days (adjacent) | "
        f"{r['stale_run_adjacent']['seconds']:.2f} | {r['stale_run_adjacent']['seconds'] / full:.3f} | "
        f"{r['stale_run_adjacent']['chunks']} chunks, {r['stale_run_adjacent']['days']} days, "
        f"{r['stale_run_adjacent']['visits']:,} visits; {r['rows_edited_adjacent']} rows edited |",
        f"| stale rerun, nothing stale | {r['stale_rerun']['seconds']:.2f} | {r['stale_rerun']['seconds'] / full:.3f}"
        f" | {r['stale_rerun']['chunks']} chunks |",
        f"| full rerun after the stale run | {r['full_rerun']['seconds']:.2f} | "
        f"{r['full_rerun']['seconds'] / full:.3f} | wrote nothing (the stale run left a full run's output) |",
        f"| as its own process: a stale rerun, nothing stale | {r['stale_rerun_process_s']:.2f} | "
        f"{r['stale_rerun_process_s'] / full:.3f} | {start_s:.2f} s more than in a warm process: what every "
        "command pays to start |",
        "", f"Every run above was timed in a process warmed by one run ({r['warm_up_s']:.2f} s, a day without visits). "
        f"Timed as a user times a command, each run pays the start as well: the stale run after the spread edits is "
        f"then {(r['stale_run']['seconds'] + start_s) / (full + start_s):.3f} of the full run.",
        "", f"Edited days: {', '.join(r['edited_days'])}; stale days: {', '.join(r['stale_days'])}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.freshness_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--visits-per-day", type=int, default=11_100)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--caregivers", type=int, default=5_000)
    parser.add_argument("--edited-days", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args(argv)
    server = args.database_url or db.embedded_database_url()
    with own_database(server) as url, tempfile.TemporaryDirectory(prefix="etl-fresh-bench-") as runs_dir, \
            _environ(ETL_RUNS_DIR=runs_dir, ETL_FAULT_CHUNKS=None):
        result = measure(url, args)
    text = report(result)
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (RESULTS_DIR / f"freshness-{stamp}.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
