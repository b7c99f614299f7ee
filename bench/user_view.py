"""Performance as a user meets it (issue 13): whole processes, against the bare floors.

    .venv/bin/python -m bench.user_view [--scale reference,large,dense] [--repeats 3] [--database-url URL]

For every scale point, on its own database (created on the server $DATABASE_URL names, dropped at the end):

- import floor: a fresh interpreter importing what a local run cannot do without (boto3, psycopg2, pydantic,
  Powertools' Logger/Metrics/Tracer/idempotency/batch, moto's Step Functions interpreter, SQS, DynamoDB, Lambda);
- empty window: ``etl-pipeline run --local`` as a subprocess over a window with no visits;
- CLI run: ``etl-pipeline run --local`` as a subprocess over the window, default (adaptive) chunks, concurrency 2;
- minimal statement: stage the eligible visits into a temporary table, index it, band-join it into a temporary
  result table (bench/sql/minimal_*.sql), on the same database in the same run;
- naive (reference scale only): Task 01 + the original job's one statement (bench/sql/apply_chunk_conflicts_naive.sql);
- every chunk's statement time per visit, against the median chunk's.

Scales: reference = 60 days at 10,800 visits a day, 5,000 caregivers (648k visits); large = 240 days at the same
density (2.6M); dense = 1,000 caregivers with five independent schedules each, 240 days (2.6M visits). Only
``reference`` runs by default (it is part of ``make bench``); the others take minutes each."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg2

from bench.run_bench import EMPTIED
from chunking import db, ledger, seed, tasks
from chunking.db import PROJECT_ROOT

BENCH_SQL = Path(__file__).resolve().parent / "sql"
START = date(2026, 1, 5)
EMPTY_DAY = date(2035, 1, 1)
FLOOR = ("import boto3, psycopg2, pydantic\n"
         "from aws_lambda_powertools import Logger, Metrics, Tracer\n"
         "from aws_lambda_powertools.utilities import idempotency, batch\n"
         "from moto import mock_aws\n"
         "import moto.stepfunctions.parser.models, moto.sqs.models, moto.dynamodb.models\n"
         "import moto.awslambda_simple.models\n")
# The same, with the emulator's one trim of moto applied first (chunking.emulator._defer_moto_batch: moto.batch
# registered without running its __init__, so the interpreter's import does not pull in EC2's models): what a
# local run now imports. The first floor is the definition, kept for comparison.
FLOOR_TRIMMED = ("import importlib.util, sys, moto\n"
                 "spec = importlib.util.find_spec('moto.batch')\n"
                 "sys.modules['moto.batch'] = moto.batch = importlib.util.module_from_spec(spec)\n" + FLOOR)
SCALES = {  # name: (days, visits a day, caregivers, independent schedules per caregiver)
    "reference": (60, 10_800, 5_000, 1),
    "large": (240, 10_800, 5_000, 1),
    "dense": (240, 10_800, 1_000, 5),
}
CLI = [str(Path(sys.executable).parent / "etl-pipeline")]  # the installed command, as a user runs it


def note(text: str) -> None:
    print(f"user_view: {text}", file=sys.stderr, flush=True)


# Runs the measured command as its child and writes that child's rusage to a file: the peak RSS (ru_maxrss) of a
# process forked from this benchmark would include this benchmark's own (Linux carries it over across fork and
# exec), so the command is started from this small interpreter instead.
RUSAGE_PROBE = ("import json, resource, subprocess, sys\n"
                "code = subprocess.call(sys.argv[2:])\n"
                "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
                "usage = {'cpu_s': u.ru_utime + u.ru_stime, 'maxrss_kb': u.ru_maxrss}\n"
                "open(sys.argv[1], 'w').write(json.dumps(usage))\n"
                "sys.exit(code)\n")


def timed(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """One process: its wall seconds, CPU seconds (user + system, its own, not the database server's), peak RSS
    (KiB) and stdout; the machine's 1-minute load average when it ended (the machine is shared: a load above its
    2 cores means every figure of that sample is stretched)."""
    with tempfile.TemporaryDirectory() as scratch:
        usage_path = Path(scratch) / "rusage.json"
        began_at, began = time.time(), time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", RUSAGE_PROBE, str(usage_path), *argv], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, env={**os.environ, **(env or {})})
        seconds = time.perf_counter() - began
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        usage = json.loads(usage_path.read_text())
    return {"seconds": seconds, **usage, "stdout": proc.stdout, "began_at": began_at, "load1": os.getloadavg()[0]}


def import_floor(repeats: int, code: str = FLOOR) -> list[float]:
    return [timed([sys.executable, "-c", code])["seconds"] for _ in range(repeats)]


def reset(conn: Any) -> None:
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"TRUNCATE {', '.join(EMPTIED)}")  # fixed table names, no input
        cur.execute("ANALYZE conflict.conflict_visit_maps, conflict.rejected_visits, etl.runs, etl.chunks")
        cur.execute("CHECKPOINT")
    conn.autocommit = False


def cli_run(url: str, start: date, end: date, concurrency: int = 2) -> tuple[float, dict[str, Any]]:
    proc = timed([*CLI, "run", "--local", "--start", start.isoformat(), "--end", end.isoformat(),
                  "--max-concurrency", str(concurrency), "--json", "--database-url", url])
    summary = json.loads(proc.pop("stdout").strip().splitlines()[-1])
    summary["process"] = proc
    return proc["seconds"], summary


def phases(conn: Any, run_id: int, process: dict[str, Any]) -> dict[str, float]:
    """Where a CLI run's seconds went, from the ledger's timestamps and the process's start and end: start (the
    interpreter, imports, the emulator, ValidateConfig, up to the staging transaction's start), staging (to the
    plan's chunks being recorded), dispatch (to the first chunk attempt), chunks (first attempt start to last
    attempt end), reconcile (to the run's end) and exit (to the process's end)."""
    with conn.cursor() as cur:
        cur.execute("SELECT extract(epoch FROM r.staged_at), extract(epoch FROM min(c.queued_at)), "
                    "extract(epoch FROM min(a.started_at)), extract(epoch FROM max(a.finished_at)), "
                    "extract(epoch FROM r.finished_at) FROM etl.runs r JOIN etl.chunks c USING (run_id) "
                    "JOIN etl.chunk_attempts a USING (run_id, chunk_id) WHERE r.run_id = %s GROUP BY r.run_id",
                    (run_id,))
        staged, queued, first, last, finished = (float(x) for x in cur.fetchone())
    conn.rollback()
    began, ended = process["began_at"], process["began_at"] + process["seconds"]
    return {"start": staged - began, "staging": queued - staged, "dispatch": first - queued, "chunks": last - first,
            "reconcile": finished - last, "exit": ended - finished}


def minimal_statement(conn: Any, start: date, end: date) -> dict[str, float]:
    params = {"start": start, "end": end, "partner_end": end + timedelta(days=tasks.PARTNER_DAYS)}
    times = {}
    began = time.perf_counter()
    with db.transaction(conn), conn.cursor() as cur:
        db.set_local(conn, jit="off")
        for step in ("minimal_stage", "minimal_index", "minimal_conflicts"):
            t = time.perf_counter()
            cur.execute((BENCH_SQL / f"{step}.sql").read_text(), params)
            if step == "minimal_index":
                cur.execute("ANALYZE minimal_visits")
            times[step] = time.perf_counter() - t
        cur.execute("SELECT count(*) FROM minimal_conflicts")
        times["conflicts"] = cur.fetchone()[0]
    times["seconds"] = time.perf_counter() - began
    return times


def naive_job(conn: Any, start: date, end: date) -> float:
    run = ledger.begin_run(conn, execution_name=f"naive-{uuid.uuid4().hex[:8]}", trigger="bench", executor="bench",
                           window_start=start, window_end=end, chunk_days=(end - start).days + 1,
                           max_chunk_rows=None, max_concurrency=1)
    began = time.perf_counter()
    tasks.stage_visits(conn, run["run_id"], start, end)
    with db.transaction(conn), conn.cursor() as cur:
        db.set_local(conn, jit="off")
        cur.execute((BENCH_SQL / "apply_chunk_conflicts_naive.sql").read_text(),
                    {"run_id": run["run_id"], "chunk_start": start, "chunk_end": end, "days": None})
        cur.fetchall()
    return time.perf_counter() - began


def chunk_rates(conn: Any, run_id: int) -> list[dict[str, Any]]:
    chunks = ledger.list_chunks(conn, run_id)
    conn.rollback()
    return [{"chunk_id": c["chunk_id"], "start": c["chunk_start"].isoformat(), "end": c["chunk_end"].isoformat(),
             "visits": c["visits"], "statement_s": (c["duration_ms"] or 0) / 1000,
             "us_per_visit": round((c["duration_ms"] or 0) * 1000 / max(1, c["visits"] or 0), 2)}
            for c in chunks if c["status"] == "SUCCEEDED"]


def seed_scale(conn: Any, days: int, per_day: int, caregivers: int, schedules: int) -> int:
    total = per_day * (days + tasks.PARTNER_DAYS)
    for index in range(schedules):
        seed.seed_visits(conn, visits=total // schedules, start=START, days=days + tasks.PARTNER_DAYS,
                         seed=7 + index, mode="append", caregiver_count=caregivers)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM (ANALYZE) analytics.visits")
    conn.autocommit = False
    return total


def measure_scale(server_url: str, name: str, repeats: int) -> dict[str, Any]:
    from bench.run_bench import own_database

    days, per_day, caregivers, schedules = SCALES[name]
    start, end = START, START + timedelta(days=days - 1)
    out: dict[str, Any] = {"scale": name, "days": days, "caregivers": caregivers, "schedules": schedules}
    with own_database(server_url) as url:
        conn = psycopg2.connect(url)
        note(f"{name}: seeding {per_day * (days + tasks.PARTNER_DAYS):,} visits")
        out["seeded"] = seed_scale(conn, days, per_day, caregivers, schedules)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM analytics.visits WHERE visit_date BETWEEN %s AND %s", (start, end))
            out["visits"] = (cur.fetchone() or (0,))[0]
        conn.rollback()
        reset(conn)
        empties = [cli_run(url, EMPTY_DAY, EMPTY_DAY)[1]["process"] for _ in range(repeats)]
        out["empty_window_s"] = [e["seconds"] for e in empties]
        out["empty_window"] = empties
        runs, minimal, naive = [], [], []
        for repeat in range(repeats):
            note(f"{name}: repeat {repeat + 1}: CLI run")
            reset(conn)
            seconds, summary = cli_run(url, start, end)
            runs.append({"seconds": seconds, "run_id": summary.get("run_id"), "process": summary["process"],
                         "phases": phases(conn, int(summary["run_id"]), summary["process"]),
                         "chunks": chunk_rates(conn, int(summary["run_id"]))})
            note(f"{name}: repeat {repeat + 1}: minimal statement")
            reset(conn)
            minimal.append(minimal_statement(conn, start, end))
            if name == "reference":
                note(f"{name}: repeat {repeat + 1}: naive job")
                reset(conn)
                naive.append(naive_job(conn, start, end))
        conn.close()
    out.update(cli_runs=runs, minimal=minimal, naive_s=naive)
    return out


def summary(results: dict[str, Any]) -> list[str]:
    floor = statistics.median(results["import_floor_s"])
    trimmed = statistics.median(results.get("import_floor_trimmed_s") or [float("nan")])
    lines = ["### As a user meets it (bench/user_view.py)", "",
             f"Import floor (fresh interpreter, median of {len(results['import_floor_s'])}): {floor:.2f} s; "
             f"without EC2's models (what a local run imports now): {trimmed:.2f} s; the empty window's ratio below "
             "is to the first, the issue's definition", "",
             "| scale | visits | empty window | / floor | CLI run c2 | minimal statement | CLI / minimal | naive | "
             "CLI / naive | chunks | slowest chunk per visit / median |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for point in results["scales"]:
        empty = statistics.median(point["empty_window_s"])
        cli = statistics.median(r["seconds"] for r in point["cli_runs"])
        minimal = statistics.median(m["seconds"] for m in point["minimal"])
        naive = statistics.median(point["naive_s"]) if point["naive_s"] else None
        rates = [c["us_per_visit"] for r in point["cli_runs"] for c in r["chunks"] if (c["visits"] or 0) > 1000]
        worst = max(rates) / statistics.median(rates) if rates else 0.0
        lines.append(
            f"| {point['scale']} ({point['days']} d, {point['caregivers']:,} caregivers x {point['schedules']}) | "
            f"{point['visits']:,} | {empty:.2f} s | {empty / floor:.2f}x | {cli:.2f} s | {minimal:.2f} s | "
            f"{cli / minimal:.2f}x | {'' if naive is None else f'{naive:.2f} s'} | "
            f"{'' if naive is None else f'{cli / naive:.2f}x'} | {len(point['cli_runs'][0]['chunks'])} | "
            f"{worst:.2f}x |")
    lines += ["", "Where the CLI runs' seconds went (medians; ledger timestamps; CPU is the CLI process's own, "
              "not the database server's; load is the machine's 1-minute load average at the end, 2 cores):", "",
              "| scale | run | start | staging | dispatch | chunks | reconcile | exit | CLI CPU s | peak RSS MB "
              "| load |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for point in results["scales"]:
        samples: list[tuple[str, dict[str, float] | None, dict[str, Any] | None]]
        samples = [("empty window", None, p) for p in point.get("empty_window", [])]
        samples += [("window", r.get("phases"), r.get("process")) for r in point["cli_runs"]]
        for kind in ("empty window", "window"):
            mine = [(ph, pr) for k, ph, pr in samples if k == kind and pr]
            if not mine:
                continue
            cells = []
            for key in ("start", "staging", "dispatch", "chunks", "reconcile", "exit"):
                values = [ph[key] for ph, _ in mine if ph is not None]
                cells.append(f"{statistics.median(values):.2f}" if values else "")
            procs = [pr for _, pr in mine if pr is not None]
            cpu = statistics.median(pr["cpu_s"] for pr in procs)
            rss = statistics.median(pr["maxrss_kb"] for pr in procs) / 1024
            load = statistics.median(pr["load1"] for pr in procs)
            lines.append(f"| {point['scale']} | {kind} | {' | '.join(cells)} | {cpu:.2f} | {rss:.0f} | {load:.1f} |")
    lines.append("")
    for point in results["scales"]:
        lines += [f"Chunks of {point['scale']} (every repeat): statement s, µs per visit", ""]
        for r in point["cli_runs"]:
            lines.append("- " + ", ".join(f"{c['chunk_id']}: {c['visits']:,} visits {c['statement_s']:.2f} s "
                                          f"({c['us_per_visit']:.1f} µs)" for c in r["chunks"]))
        lines.append("")
    return lines


def measure(server_url: str, scales: Sequence[str], repeats: int) -> dict[str, Any]:
    results: dict[str, Any] = {"import_floor_s": import_floor(max(3, repeats)),
                               "import_floor_trimmed_s": import_floor(max(3, repeats), FLOOR_TRIMMED), "scales": []}
    for name in scales:
        results["scales"].append(measure_scale(server_url, name, repeats))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="reference", help="comma-separated: reference, large, dense")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or db.embedded_database_url())
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    scales = [s for s in args.scale.split(",") if s]
    unknown = set(scales) - set(SCALES)
    if unknown:
        parser.error(f"unknown scale {', '.join(sorted(unknown))}")
    results = measure(args.database_url, scales, args.repeats)
    text = "\n".join(summary(results))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (args.out / f"user-view-{stamp}.json").write_text(json.dumps(results, indent=1, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
