"""The benchmark of issue 5: is the chunked pipeline fast, linear, and far from the Lambda limits?

    .venv/bin/python -m bench.run_bench [--visits-per-day 10800] [--caregivers 5000] [--windows 7,30,90]
                                        [--repeats 1] [--explain] [--database-url URL]

On its own database (created on the server $DATABASE_URL names, else the embedded PostgreSQL, and dropped at
the end), with one generated population at a fixed rate of visits per day, it times for every window:

1. naive: Task 01 (staging) + Task 02 as ONE statement whose join finds partners by caregiver alone, the
   original job's shape (bench/sql/apply_chunk_conflicts_naive.sql);
2. project: Task 01 + Task 02 as ONE statement with the project's join (sql/tasks/apply_chunk_conflicts.sql
   over one chunk covering the window);
3. the full local pipeline (``etl-pipeline run --local``: the emulator, the real ASL, SQS, the worker
   threads, staging, planning and reconciliation) with 1-day chunks and with adaptive chunks, at
   concurrency 1 and 2.

Every measurement starts from the same state (conflict, rejection, staging and ledger tables emptied and
analysed, CHECKPOINT) and must leave exactly the same conflict map (checked by digest). Ratios are to (2),
staging included, since the original job staged (Task 01) before Task 02 too. It also measures handler import
times in fresh interpreters, the worker's peak memory on the adaptive plan's largest chunk, and the planner's
estimate and the measured duration of every chunk against a quarter of the worker's timeout. ``--explain``
prints the plan shapes of Task 02 (EXPLAIN ANALYZE, BUFFERS) at about 10k, 100k and 1M visits.

Results: a Markdown report on stdout, and the same report and every sample as JSON under bench/results/."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras
import yaml
from psycopg2 import sql

from chunking import cli, db, ledger, seed, tasks
from chunking.db import PROJECT_ROOT, Connection
from chunking.settings import Settings

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
NAIVE_SQL = BENCH_DIR / "sql" / "apply_chunk_conflicts_naive.sql"
PROJECT_SQL = db.SQL_DIR / "tasks" / "apply_chunk_conflicts.sql"
DIGEST_SQL = BENCH_DIR / "sql" / "output_digest.sql"
HANDLERS = ("validate_config", "stage_visits", "plan_chunks", "reconcile_run", "chunk_worker")
START = date(2026, 1, 5)
EXPLAIN_SIZES = (10_000, 100_000, 1_000_000)
REFERENCE_VISITS = 650_000  # DESIGN.md's measurement: ~650k visits over 60 days, 5,000 caregivers
# Every table that references etl.runs is emptied with it (schemas 005, 006, 011, 013 and 017).
EMPTIED = ("etl.run_executions", "etl.source_fingerprints", "etl.source_reach", "etl.source_snapshots", "etl.day_state",
           "etl.run_days", "etl.source_far_visits", "etl.source_late_fingerprints", "etl.chunk_attempts", "etl.chunks",
           "etl.staged_visits", "etl.runs",
           "conflict.conflict_visit_maps", "conflict.rejected_visits")

# The measurements, in the order they run (and are printed).
NAIVE, PROJECT = "naive", "project"
PIPELINES = {  # name: (chunk days or None for the adaptive plan, concurrency)
    "pipeline 1-day c1": (1, 1),
    "pipeline 1-day c2": (1, 2),
    "pipeline adaptive c1": (None, 1),
    "pipeline adaptive c2": (None, 2),
}
HEADLINE = "pipeline adaptive c2"
INCLUDES = {
    NAIVE: "Task 01 (staging + ANALYZE) + Task 02 as one statement, partners joined on caregiver alone",
    PROJECT: "Task 01 (staging + ANALYZE) + Task 02 as one statement, the project's band join",
    **{name: "run --local end to end: emulator start, ValidateConfig, Task 01, PlanChunks, the Map through SQS "
             "to the worker threads, Reconcile, emulator stop" for name in PIPELINES},
}
TARGETS = {"pipeline_vs_project": 1.5, "pipeline_vs_naive": 0.5, "cost_per_visit_growth": 1.3, "import_s": 1.0,
           "memory_share": 0.5}


# --- what is measured ----------------------------------------------------------------------------------------

@dataclasses.dataclass
class Sample:
    window_days: int
    measurement: str
    repeat: int
    seconds: float  # what ratios use: staging + statement for (1)/(2), the whole run for the pipelines
    visits: int  # visits dated in the window (all of analytics.visits, cancelled ones included)
    statement_s: float | None = None
    staging_s: float | None = None
    chunks: int = 1
    phases: dict[str, float] = dataclasses.field(default_factory=dict)
    chunk_rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    digest: dict[str, Any] = dataclasses.field(default_factory=dict)
    run_id: int | None = None
    sizing: dict[str, Any] | None = None
    rerun: dict[str, Any] | None = None


@dataclasses.dataclass
class Bench:
    conn: Connection
    url: str
    args: argparse.Namespace
    settings: Settings
    runs_dir: Path
    checkpoint: bool = True
    samples: list[Sample] = dataclasses.field(default_factory=list)

    # -- state ------------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """The same starting state for every measurement: output, staging and ledger empty and analysed."""
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute(f"TRUNCATE {', '.join(EMPTIED)}")  # fixed table names, no input
            cur.execute(f"ANALYZE {', '.join(EMPTIED)}")
            if self.checkpoint:
                try:
                    cur.execute("CHECKPOINT")
                except psycopg2.Error as exc:  # needs superuser or pg_checkpoint
                    self.checkpoint = False
                    note(f"CHECKPOINT refused ({exc.pgerror or exc}); measurements run without it")
        self.conn.autocommit = False

    def visits_in(self, start: date, end: date) -> int:
        with self.conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM analytics.visits WHERE visit_date BETWEEN %s AND %s", (start, end))
            row = cur.fetchone()
        self.conn.rollback()
        return int(row[0]) if row else 0

    def digest(self) -> dict[str, Any]:
        with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(DIGEST_SQL.read_text())
            row = dict(cur.fetchone() or {})
        self.conn.rollback()
        return row

    # -- (1) and (2): one statement -----------------------------------------------------------------------------

    def one_statement(self, window: int, repeat: int, measurement: str) -> Sample:
        start, end = window_of(window)
        self.reset()
        run = ledger.begin_run(self.conn, execution_name=f"bench-{measurement}-{uuid.uuid4().hex[:8]}",
                               trigger="bench", executor="bench", window_start=start, window_end=end,
                               chunk_days=window, max_chunk_rows=None, max_concurrency=1)
        began = time.perf_counter()
        tasks.stage_visits(self.conn, run["run_id"], start, end)
        staged = time.perf_counter()
        statement = (NAIVE_SQL if measurement == NAIVE else PROJECT_SQL).read_text()
        with db.transaction(self.conn), self.conn.cursor() as cur:
            # (2) as the worker runs Task 02; (1) as the original job ran, with the planner's default choices
            db.set_local(self.conn, **(tasks.STATEMENT_SETTINGS if measurement == PROJECT else {"jit": "off"}))
            cur.execute(statement, {"run_id": run["run_id"], "chunk_start": start, "chunk_end": end, "days": None})
            cur.fetchall()
        done = time.perf_counter()
        sample = Sample(window, measurement, repeat, done - began, self.visits_in(start, end),
                        statement_s=done - staged, staging_s=staged - began, digest=self.digest(),
                        run_id=run["run_id"])
        if measurement == PROJECT:
            sample.rerun = self.rerun(run["run_id"], start, end, statement)
        return sample

    def rerun(self, run_id: int, start: date, end: date, statement: str) -> dict[str, Any]:
        """The nightly steady state: the same window again over an unchanged population. The previous staging is
        deleted and vacuumed first (a run clears its staging when it ends; autovacuum follows, but is off on some
        servers), then the window is restaged: every pair found is unchanged, nothing is written."""
        with db.transaction(self.conn):
            db.execute(self.conn, "tasks/clear_staged_visits", {"run_id": run_id})
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute("VACUUM etl.staged_visits")
        self.conn.autocommit = False
        began = time.perf_counter()
        tasks.stage_visits(self.conn, run_id, start, end)
        staged = time.perf_counter()
        with db.transaction(self.conn), self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            db.set_local(self.conn, **tasks.STATEMENT_SETTINGS)
            cur.execute(statement, {"run_id": run_id, "chunk_start": start, "chunk_end": end})
            counts = dict(cur.fetchone() or {})
        done = time.perf_counter()
        return {"staging_s": staged - began, "statement_s": done - staged, **counts}

    # -- (3): the full local pipeline -----------------------------------------------------------------------------

    def pipeline(self, window: int, repeat: int, measurement: str) -> Sample:
        chunk_days, concurrency = PIPELINES[measurement]
        start, end = window_of(window)
        self.reset()
        argv = ["run", "--local", "--start", start.isoformat(), "--end", end.isoformat(),
                "--max-concurrency", str(concurrency), "--json", "--database-url", self.url]
        if chunk_days:
            argv += ["--chunk-days", str(chunk_days)]
        out, err = io.StringIO(), io.StringIO()
        db_began = self.db_clock()
        began = time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
        seconds = time.perf_counter() - began
        db_ended = self.db_clock()
        if code != 0:
            raise RuntimeError(f"{measurement} over {window} days failed (exit {code}): {err.getvalue()[-2000:]}")
        run_id = int(json.loads(out.getvalue().strip().splitlines()[-1])["run_id"])
        run = ledger.get_run(self.conn, run_id)
        chunks = ledger.list_chunks(self.conn, run_id)
        attempts = ledger.list_attempts(self.conn, run_id)
        self.conn.rollback()
        spent = phases(run, chunks, db_began, db_ended)
        return Sample(window, measurement, repeat, seconds, self.visits_in(start, end), chunks=len(chunks),
                      staging_s=spent["stage_and_plan"], phases=spent, chunk_rows=chunk_timings(chunks, attempts),
                      digest=self.digest(), run_id=run_id, sizing=run.get("sizing"))

    def db_clock(self) -> datetime:
        with self.conn.cursor() as cur:
            cur.execute("SELECT clock_timestamp()")
            row = cur.fetchone()
        self.conn.rollback()
        assert row is not None
        return row[0]

    # -- the worker's memory on the largest chunk of the adaptive plan -------------------------------------------

    def worker_memory(self, window: int, concurrency: int) -> dict[str, Any]:
        """Stage the window, plan it as the adaptive pipeline does, apply its largest chunk in a fresh process."""
        start, end = window_of(window)
        self.reset()
        run = ledger.begin_run(self.conn, execution_name=f"bench-memory-{uuid.uuid4().hex[:8]}", trigger="bench",
                               executor="bench", window_start=start, window_end=end,
                               chunk_days=self.settings.chunk_days, max_chunk_rows=None,
                               max_concurrency=concurrency)
        tasks.stage_visits(self.conn, run["run_id"], start, end)
        sizing = tasks.plan_sizing(self.conn, self.settings, chunk_days=self.settings.chunk_days, fixed_rows=None,
                                   concurrency=concurrency)
        chunks = tasks.plan_run(self.conn, run, sizing)
        largest = max(chunks, key=lambda c: c.estimated_rows)
        probe = subprocess.run(
            [sys.executable, "-m", "bench.worker_probe", self.url, str(run["run_id"]), str(largest.chunk_id),
             largest.start.isoformat(), largest.end.isoformat(), str(self.settings.worker_timeout_s)],
            cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
        if probe.returncode != 0:
            raise RuntimeError(f"worker probe failed: {probe.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(probe.stdout.strip().splitlines()[-1])
        applied = ledger.list_chunks(self.conn, run["run_id"])
        self.conn.rollback()
        result["statement_s"] = next(c["duration_ms"] or 0 for c in applied if c["chunk_id"] == largest.chunk_id) / 1000
        result.update(window_days=window, concurrency=concurrency, chunk_id=largest.chunk_id,
                      chunk_start=largest.start.isoformat(), chunk_end=largest.end.isoformat(),
                      chunk_rows=largest.estimated_rows, memory_mb=function_memory_mb())
        return result

    # -- EXPLAIN ---------------------------------------------------------------------------------------------------

    def explain(self, target_visits: int, statement: Path) -> dict[str, Any]:
        days = max(1, round(target_visits / self.args.visits_per_day))
        start, end = window_of(days)
        self.reset()
        run = ledger.begin_run(self.conn, execution_name=f"bench-explain-{uuid.uuid4().hex[:8]}", trigger="bench",
                               executor="bench", window_start=start, window_end=end, chunk_days=days,
                               max_chunk_rows=None, max_concurrency=1)
        tasks.stage_visits(self.conn, run["run_id"], start, end)
        with self.conn.cursor() as cur:
            db.set_local(self.conn, **tasks.STATEMENT_SETTINGS)
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement.read_text(),
                        {"run_id": run["run_id"], "chunk_start": start, "chunk_end": end})
            row = cur.fetchone()
        self.conn.rollback()  # EXPLAIN ANALYZE wrote the conflicts: not kept
        assert row is not None
        plan = row[0][0] if isinstance(row[0], list) else json.loads(row[0])[0]
        return {"target_visits": target_visits, "window_days": days, "visits": self.visits_in(start, end),
                "statement": statement.name, "execution_ms": plan["Execution Time"],
                "shape": plan_lines(plan["Plan"]), "staged_visits_access": staged_access(plan["Plan"])}


def window_of(days: int) -> tuple[date, date]:
    return START, START + timedelta(days=days - 1)


def phases(run: Mapping[str, Any], chunks: Sequence[Mapping[str, Any]],
           began: datetime, ended: datetime) -> dict[str, float]:
    """Where a pipeline run's time went, from the ledger (database clock). ``staged_at`` is set when staging
    begins, ``queued_at`` when PlanChunks records the plan, after staging and its ANALYZE."""
    planned = min((c["queued_at"] for c in chunks if c["queued_at"]), default=run["staged_at"])
    last_chunk = max((c["finished_at"] for c in chunks if c["finished_at"]), default=planned)

    def span(a: datetime, b: datetime) -> float:
        return round((b - a).total_seconds(), 3)

    return {"start_and_validate": span(began, run["staged_at"]), "stage_and_plan": span(run["staged_at"], planned),
            "chunks": span(planned, last_chunk), "reconcile_and_stop": span(last_chunk, ended),
            "chunk_statements_sum": round(sum((c["duration_ms"] or 0) for c in chunks) / 1000, 3)}


def chunk_timings(chunks: Sequence[Mapping[str, Any]], attempts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every chunk: its rows, the planner's estimate, the worker's measured statement time and attempt time."""
    wall: dict[int, float] = {}
    for a in attempts:
        if a["outcome"] == "SUCCEEDED" and a["finished_at"]:
            wall[a["chunk_id"]] = (a["finished_at"] - a["started_at"]).total_seconds()
    return [{"chunk_id": c["chunk_id"], "start": c["chunk_start"].isoformat(), "end": c["chunk_end"].isoformat(),
             "rows": c["estimated_rows"], "visits": c["visits"], "estimated_s": (c["estimated_ms"] or 0) / 1000,
             "statement_s": (c["duration_ms"] or 0) / 1000, "attempt_s": round(wall.get(c["chunk_id"], 0.0), 3),
             "attempts": c["attempts"]} for c in chunks]


# --- plans ------------------------------------------------------------------------------------------------------

def plan_lines(node: dict[str, Any], depth: int = 0) -> list[str]:
    """A plan tree as indented lines: node, relation or index, actual rows, loops, time."""
    label = node["Node Type"]
    if node.get("Join Type") not in (None, "Inner"):
        label = f"{label} ({node['Join Type']})"
    if node.get("Subplan Name"):
        label = f"{node['Subplan Name']}: {label}"
    if node.get("Index Name"):
        label += f" using {node['Index Name']}"
    if node.get("Relation Name"):
        label += f" on {node.get('Schema', '')}.{node['Relation Name']}".replace(" .", " ")
    if node.get("CTE Name"):
        label += f" ({node['CTE Name']})"
    removed = node.get("Rows Removed by Join Filter") or 0
    loops = node.get("Actual Loops", 0)
    each = node.get("Actual Total Time", 0.0)  # per loop, as EXPLAIN reports it
    stats = f"rows={node.get('Actual Rows', 0):,} loops={loops:,} " + (
        f"{each:,.0f} ms" if loops <= 1 else f"{each:.4f} ms per loop")
    if removed:
        stats += f", {removed:,} pairs removed by the join filter"
    lines = [f"{'  ' * depth}{label}  [{stats}]"]
    for child in node.get("Plans", []):
        lines.extend(plan_lines(child, depth + 1))
    return lines


def staged_access(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every scan of etl.staged_visits in a plan, and the join node right above it."""
    found: list[dict[str, Any]] = []

    def walk(n: dict[str, Any], parent: dict[str, Any] | None) -> None:
        if str(n.get("Relation Name", "")).startswith("staged_visits"):  # the run's partition (schema 004)
            found.append({"scan": n["Node Type"], "index": n.get("Index Name"), "loops": n.get("Actual Loops"),
                          "parent": parent["Node Type"] if parent else None})
        for child in n.get("Plans", []):
            walk(child, n if "Join" in n["Node Type"] or n["Node Type"] == "Nested Loop" else parent)

    walk(node, None)
    return found


# --- cold start and limits --------------------------------------------------------------------------------------

def import_times(repeats: int) -> dict[str, list[float]]:
    """Seconds to import each handler module in a fresh interpreter (its cold-start import cost)."""
    code = ("import time; began = time.perf_counter(); import handlers.{0}; "
            "print(time.perf_counter() - began)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETL_", "DATABASE_URL", "POWERTOOLS_"))}
    env.update(AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", POWERTOOLS_SERVICE_NAME="conflict-map")
    times: dict[str, list[float]] = {}
    for handler in HANDLERS:
        for _ in range(repeats):
            done = subprocess.run([sys.executable, "-c", code.format(handler)], cwd=PROJECT_ROOT, env=env,
                                  capture_output=True, text=True, check=True)
            times.setdefault(handler, []).append(float(done.stdout.strip().splitlines()[-1]))
    return times


class _TemplateLoader(yaml.SafeLoader):
    """template.yaml with CloudFormation's short tags (!Ref, !Sub...) read as nothing."""


_TemplateLoader.add_multi_constructor("!", lambda loader, suffix, node: None)  # noqa: ARG005 - PyYAML's signature


def function_memory_mb() -> int:
    """The worker function's MemorySize in template.yaml (its own, else the Globals one)."""
    template = yaml.load((PROJECT_ROOT / "template.yaml").read_text(), Loader=_TemplateLoader)
    own = template["Resources"]["ChunkWorkerFunction"]["Properties"].get("MemorySize")
    return int(own or template["Globals"]["Function"]["MemorySize"])


def machine(conn: Connection) -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    with conn.cursor() as cur:
        cur.execute("SELECT version()")
        version = (cur.fetchone() or ["?"])[0]
        cur.execute("SELECT name, setting, unit FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem', "
                    "'max_wal_size', 'jit', 'autovacuum', 'synchronous_commit', 'max_parallel_workers_per_gather')")
        settings = {name: f"{setting}{' x ' + unit if unit else ''}" for name, setting, unit in cur.fetchall()}
    conn.rollback()
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(mem_kb / 1024 / 1024, 1), "postgresql": version,
            "postgresql_settings": settings, "python": platform.python_version(), "os": platform.platform()}


# --- the run ----------------------------------------------------------------------------------------------------

def note(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def own_database(server_url: str) -> Iterator[str]:
    """A new database on the server, with the pipeline's schema; dropped at the end, whatever happens."""
    name = f"etl_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg2.extensions.make_dsn(server_url, dbname=name)
    try:
        conn = psycopg2.connect(url)
        db.migrate(conn)
        conn.close()
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


def seed_population(conn: Connection, args: argparse.Namespace) -> dict[str, Any]:
    days = max(args.windows) + tasks.PARTNER_DAYS
    if args.explain:
        days = max(days, math.ceil(max(args.explain_sizes) / args.visits_per_day) + tasks.PARTNER_DAYS)
    visits = args.visits_per_day * days
    note(f"seeding {visits:,} visits over {days} days ({args.visits_per_day:,}/day, {args.caregivers:,} caregivers)")
    began = time.perf_counter()
    seed.seed_visits(conn, visits=visits, start=START, days=days, seed=args.seed,
                      caregiver_count=args.caregivers)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM (ANALYZE) analytics.visits")  # hint bits and visibility set once, not in a measurement
    conn.autocommit = False
    return {"visits": visits, "days": days, "start": START.isoformat(), "visits_per_day": args.visits_per_day,
            "caregivers": args.caregivers, "seed": args.seed, "seconds": round(time.perf_counter() - began, 1)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    server = db.resolve_database_url(args.database_url)
    settings = Settings.from_env()
    report: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                              "command": " ".join(["python -m bench.run_bench", *sys.argv[1:]]),
                              "worker_timeout_s": settings.worker_timeout_s,
                              "target_chunk_seconds": settings.target_chunk_seconds}
    with own_database(server) as url, tempfile.TemporaryDirectory(prefix="etl-bench-") as runs_dir, \
            _environ(ETL_RUNS_DIR=runs_dir, ETL_FAULT_CHUNKS=None):
        conn = psycopg2.connect(url)
        try:
            report["machine"] = machine(conn)
            report["data"] = seed_population(conn, args)
            bench = Bench(conn, url, args, settings, Path(runs_dir))
            if args.explain:
                report["explain"] = [bench.explain(n, path) for n in args.explain_sizes
                                     for path in (PROJECT_SQL, NAIVE_SQL)]
            bench.pipeline(1, 0, "pipeline adaptive c2")  # warm-up, not recorded: moto's lazy imports, caches
            for repeat in range(1, args.repeats + 1):
                for window in args.windows:
                    for measurement in (NAIVE, PROJECT, *PIPELINES):
                        sample = (bench.one_statement if measurement in (NAIVE, PROJECT) else bench.pipeline)(
                            window, repeat, measurement)
                        bench.samples.append(sample)
                        note(f"repeat {repeat}, {window} days: {measurement}: {sample.seconds:.2f} s")
            report["samples"] = [dataclasses.asdict(s) for s in bench.samples]
            report["worker_memory"] = bench.worker_memory(max(args.windows), concurrency=2)
            report["checkpoint_between_measurements"] = bench.checkpoint
        finally:
            conn.close()
    report["import_s"] = import_times(args.import_repeats)
    if args.user_scales:  # issue 13: whole processes against the floors (bench/user_view.py)
        from bench import user_view

        report["user_view"] = user_view.measure(server, args.user_scales, args.user_repeats)
    return report


@contextlib.contextmanager
def _environ(**values: str | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- the report -------------------------------------------------------------------------------------------------

def medians(report: dict[str, Any]) -> dict[tuple[int, str], dict[str, Any]]:
    """Per (window, measurement): the median of each timing over the repeats."""
    grouped: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for s in report["samples"]:
        grouped.setdefault((s["window_days"], s["measurement"]), []).append(s)
    out = {}
    for key, group in grouped.items():
        row = dict(group[0])
        for field in ("seconds", "statement_s", "staging_s"):
            values = [g[field] for g in group if g[field] is not None]
            row[field] = statistics.median(values) if values else None
        row["phases"] = {k: statistics.median(g["phases"][k] for g in group) for k in group[0]["phases"]}
        row["all_seconds"] = [g["seconds"] for g in group]
        out[key] = row
    return out


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def results_table(report: dict[str, Any], med: dict[tuple[int, str], dict[str, Any]]) -> list[str]:
    lines = ["| window | visits | measurement | chunks | seconds | statement alone s | staging s | ratio to (2) | "
             "visits/s | µs per visit |", "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for window in report["windows"]:
        base = med[(window, PROJECT)]["seconds"]
        for measurement in (NAIVE, PROJECT, *PIPELINES):
            m = med[(window, measurement)]
            label = {NAIVE: "(1) naive, one statement", PROJECT: "(2) project, one statement"}.get(
                measurement, f"(3) {measurement}")
            lines.append(f"| {window} d | {m['visits']:,} | {label} | {m['chunks']} | {fmt(m['seconds'])} | "
                         f"{fmt(m['statement_s'])} | {fmt(m['staging_s'])} | {m['seconds'] / base:.2f}x | "
                         f"{m['visits'] / m['seconds']:,.0f} | {m['seconds'] / m['visits'] * 1e6:.2f} |")
    return lines


def linearity_table(report: dict[str, Any], med: dict[tuple[int, str], dict[str, Any]]) -> list[str]:
    windows = report["windows"]
    lines = ["| measurement | " + " | ".join(f"{w} d" for w in windows) + f" | {windows[-1]} d / {windows[0]} d |",
             "|---|" + "---:|" * (len(windows) + 1)]
    for measurement in (NAIVE, PROJECT, *PIPELINES):
        costs = [med[(w, measurement)]["seconds"] / med[(w, measurement)]["visits"] * 1e6 for w in windows]
        lines.append(f"| {measurement} | " + " | ".join(f"{c:.2f}" for c in costs) + f" | {costs[-1] / costs[0]:.2f} |")
    statements = [med[(w, PROJECT)]["statement_s"] / med[(w, PROJECT)]["visits"] * 1e6 for w in windows]
    naive = [med[(w, NAIVE)]["statement_s"] / med[(w, NAIVE)]["visits"] * 1e6 for w in windows]
    lines.append("| project, statement alone | " + " | ".join(f"{c:.2f}" for c in statements)
                 + f" | {statements[-1] / statements[0]:.2f} |")
    lines.append("| naive, statement alone | " + " | ".join(f"{c:.2f}" for c in naive)
                 + f" | {naive[-1] / naive[0]:.2f} |")
    return lines


def rerun_table(report: dict[str, Any]) -> list[str]:
    lines = ["| window | repeat | staging s | statement alone s | µs per visit (statement) | pairs unchanged | "
             "pairs written |", "|---|---:|---:|---:|---:|---:|---:|"]
    for s in sorted(report["samples"], key=lambda s: (s["window_days"], s["repeat"])):
        r = s.get("rerun")
        if r:
            lines.append(f"| {s['window_days']} d | {s['repeat']} | {r['staging_s']:.2f} | {r['statement_s']:.2f} | "
                         f"{r['statement_s'] / s['visits'] * 1e6:.2f} | {r['unchanged']:,} | {r['written']:,} |")
    return lines


def phases_table(report: dict[str, Any], med: dict[tuple[int, str], dict[str, Any]]) -> list[str]:
    lines = ["| window | measurement | seconds | start + ValidateConfig | StageVisits + PlanChunks | chunks (Map) | "
             "Reconcile + stop | chunk statements (sum) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for window in report["windows"]:
        for measurement in PIPELINES:
            m = med[(window, measurement)]
            p = m["phases"]
            lines.append(f"| {window} d | {measurement} | {fmt(m['seconds'])} | {fmt(p['start_and_validate'])} | "
                         f"{fmt(p['stage_and_plan'])} | {fmt(p['chunks'])} | {fmt(p['reconcile_and_stop'])} | "
                         f"{fmt(p['chunk_statements_sum'])} |")
    return lines


def chunk_tables(report: dict[str, Any]) -> tuple[list[str], list[str], float]:
    """A summary per pipeline run, every chunk of the adaptive runs, and the largest time seen."""
    quarter = report["worker_timeout_s"] / 4
    summary = ["| window | measurement | repeat | chunks | max estimated s | max statement s | max attempt s | "
               f"over {quarter:g} s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    detail = ["| window | measurement | repeat | chunk | dates | rows | estimated s | statement s | attempt s |",
              "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    worst = 0.0
    for s in report["samples"]:
        if s["measurement"] not in PIPELINES:
            continue
        rows = s["chunk_rows"]
        top = max(max(r["estimated_s"], r["statement_s"], r["attempt_s"]) for r in rows)
        worst = max(worst, top)
        over = sum(1 for r in rows if max(r["estimated_s"], r["statement_s"], r["attempt_s"]) > quarter)
        summary.append(f"| {s['window_days']} d | {s['measurement']} | {s['repeat']} | {len(rows)} | "
                       f"{max(r['estimated_s'] for r in rows):.2f} | {max(r['statement_s'] for r in rows):.2f} | "
                       f"{max(r['attempt_s'] for r in rows):.2f} | {over} |")
        if PIPELINES[s["measurement"]][0] is None:
            detail += [f"| {s['window_days']} d | {s['measurement']} | {s['repeat']} | {r['chunk_id']} | "
                       f"{r['start']}..{r['end']} | {r['rows']:,} | {r['estimated_s']:.2f} | "
                       f"{r['statement_s']:.2f} | {r['attempt_s']:.2f} |" for r in rows]
    return summary, detail, worst


def digests_agree(report: dict[str, Any]) -> list[str]:
    """Windows whose measurements did not all leave the same conflict map and rejections."""
    by_window: dict[int, set[str]] = {}
    for s in report["samples"]:
        d = s["digest"]
        by_window.setdefault(s["window_days"], set()).add(f"{d['pairs_md5']}/{d['rejected_md5']}")
    return [f"{w} d" for w, seen in by_window.items() if len(seen) != 1]


def targets(report: dict[str, Any], med: dict[tuple[int, str], dict[str, Any]], worst_chunk_s: float) -> list[dict]:
    windows = report["windows"]
    reference = min(windows, key=lambda w: abs(med[(w, PROJECT)]["visits"] - REFERENCE_VISITS))
    out = []
    for window in windows:
        head, base, naive = (med[(window, m)]["seconds"] for m in (HEADLINE, PROJECT, NAIVE))
        tag = " (reference)" if window == reference else ""
        out.append({"target": f"{window} d{tag}: adaptive c2 / (2) project", "value": head / base,
                    "limit": TARGETS["pipeline_vs_project"], "unit": "x"})
        out.append({"target": f"{window} d{tag}: adaptive c2 / (1) naive", "value": head / naive,
                    "limit": TARGETS["pipeline_vs_naive"], "unit": "x"})
    for measurement in (HEADLINE, PROJECT):
        first, last = (med[(w, measurement)]["seconds"] / med[(w, measurement)]["visits"] for w in (windows[0],
                                                                                                    windows[-1]))
        out.append({"target": f"cost per visit {windows[-1]} d / {windows[0]} d: {measurement}",
                    "value": last / first, "limit": TARGETS["cost_per_visit_growth"], "unit": "x"})
    out.append({"target": "largest chunk estimate or measurement", "value": worst_chunk_s,
                "limit": report["worker_timeout_s"] / 4, "unit": "s"})
    slowest = max(max(v) for v in report["import_s"].values())
    out.append({"target": "slowest handler import (fresh interpreter)", "value": slowest, "limit": TARGETS["import_s"],
                "unit": "s"})
    memory = report["worker_memory"]
    out.append({"target": f"worker peak RSS / MemorySize {memory['memory_mb']} MB",
                "value": memory["peak_rss_kb"] / 1024 / memory["memory_mb"], "limit": TARGETS["memory_share"],
                "unit": "x"})
    for t in out:
        t["met"] = t["value"] <= t["limit"]
    return out


def markdown(report: dict[str, Any]) -> str:
    med = medians(report)
    m, d = report["machine"], report["data"]
    summary, detail, worst = chunk_tables(report)
    report["targets"] = targets(report, med, worst)
    mismatched = digests_agree(report)
    memory = report["worker_memory"]
    out = [f"# Benchmark, {report['date']}", "",
           f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM; {m['os']}; Python {m['python']}",
           f"- PostgreSQL: {m['postgresql']}",
           f"- Server settings: {', '.join(f'{k}={v}' for k, v in sorted(m['postgresql_settings'].items()))}",
           f"- Data: {d['visits']:,} visits over {d['days']} days from {d['start']} ({d['visits_per_day']:,} a day, "
           f"{d['caregivers']:,} caregivers, seed {d['seed']}); windows start on {d['start']}",
           f"- Command: `{report['command']}`; {report['repeats']} repeat(s), medians shown",
           f"- Worker timeout {report['worker_timeout_s']} s (a quarter: {report['worker_timeout_s'] / 4:g} s); "
           f"target chunk duration {report['target_chunk_seconds']} s", "",
           "## What each timing includes", "",
           *[f"- **{k}**: {v}." for k, v in INCLUDES.items()],
           "- The ratios use staging + statement for (1) and (2): the original job also staged (Task 01) before "
           "Task 02. The statement alone is shown beside it. Task 02 runs with the worker's settings (jit off).",
           "- Before every measurement: conflict, rejection, staging and ledger tables emptied and analysed, "
           f"CHECKPOINT ({'done' if report['checkpoint_between_measurements'] else 'not allowed here'}). "
           "No ledger history, so adaptive plans use the planner's documented default throughput.",
           "- Handler modules are already imported when a pipeline runs (an unrecorded warm-up run comes first); "
           "their import is measured below. The staging column of a pipeline is StageVisits + PlanChunks, "
           "from the ledger's timestamps.",
           "- Same output for every measurement of a window: "
           + ("yes" if not mismatched else "NO: " + ", ".join(mismatched)),
           "", "## Results", "", *results_table(report, med), "",
           "## Cost per visit (µs) as the window grows", "", *linearity_table(report, med), "",
           "## Rerun over unchanged data (the nightly steady state)", "",
           "After each (2), its staging is deleted and vacuumed (as when a run ends and autovacuum follows), the "
           "window restaged, and Task 02 run again over the conflict map it just wrote:",
           "", *rerun_table(report), "",
           "## Where the pipeline's time goes (seconds, medians)", "", *phases_table(report, med), "",
           "## Chunks against a quarter of the worker's timeout", "", *summary, "",
           "Every chunk of the adaptive runs (estimated: the planner; statement: the worker's Task 02 "
           "transaction; attempt: start to finish of the attempt in the ledger):", "", *detail, "",
           "## Cold start: handler import in a fresh interpreter (seconds)", "",
           "| handler | median | max |", "|---|---:|---:|",
           *[f"| handlers.{h} | {statistics.median(v):.3f} | {max(v):.3f} |" for h, v in report["import_s"].items()],
           "", "## Worker memory", "",
           f"The real ChunkWorker handler in a fresh process applied chunk {memory['chunk_id']} "
           f"({memory['chunk_start']}..{memory['chunk_end']}, {memory['chunk_rows']:,} rows), the largest of the "
           f"adaptive plan of {memory['window_days']} days at concurrency {memory['concurrency']}, in "
           f"{memory['seconds']:.2f} s, of which {memory['statement_s']:.2f} s in its Task 02 transaction (the rest "
           "is this container's first invocation: idempotency store client, ledger, callbacks). "
           f"RSS: {memory['rss_before_import_kb'] / 1024:.0f} MB at start, "
           f"{memory['rss_with_moto_kb'] / 1024:.0f} MB with moto (the emulated AWS), "
           f"{memory['rss_after_import_kb'] / 1024:.0f} MB with the handler imported, peak "
           f"**{memory['peak_rss_kb'] / 1024:.0f} MB** against MemorySize {memory['memory_mb']} MB.", ""]
    if report.get("explain"):
        out += ["## Plans of Task 02 (EXPLAIN ANALYZE, BUFFERS; jit off)", ""]
        for e in report["explain"]:
            access = "; ".join(f"{a['scan']}{' using ' + a['index'] if a['index'] else ''} x{a['loops']:,}"
                               f"{' under ' + a['parent'] if a['parent'] else ''}"
                               for a in e["staged_visits_access"] if a["loops"])
            out += [f"### {e['statement']}, {e['window_days']} days, {e['visits']:,} visits: "
                    f"{e['execution_ms']:,.0f} ms", "", f"Scans of etl.staged_visits: {access}.", "",
                    "```", *e["shape"], "```", ""]
    out += ["## Targets", "", "| target | value | limit | met |", "|---|---:|---:|---|",
            *[f"| {t['target']} | {t['value']:.2f} {t['unit']} | {t['limit']:g} {t['unit']} | "
              f"{'yes' if t['met'] else '**no**'} |" for t in report["targets"]], ""]
    return "\n".join(out)


# --- entry point ------------------------------------------------------------------------------------------------

def int_list(text: str) -> list[int]:
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"expected positive whole numbers, got {text!r}")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.run_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--visits-per-day", type=int, default=10_800, help="generated visits per day (10,800)")
    parser.add_argument("--caregivers", type=int, default=5_000, help="caregivers in the population (5,000)")
    parser.add_argument("--windows", type=int_list, default=[7, 30, 90], help="window sizes in days (7,30,90)")
    parser.add_argument("--repeats", type=int, default=1, help="repeats of every measurement; medians shown (1)")
    parser.add_argument("--import-repeats", type=int, default=5, help="fresh interpreters per handler import (5)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--user-scales", type=lambda t: [x for x in t.split(",") if x], default=["reference"],
                        help="bench/user_view.py scale points, comma-separated: reference (default), large, dense; "
                             "empty for none")
    parser.add_argument("--user-repeats", type=int, default=3, help="repeats of the user-view measurements (3)")
    parser.add_argument("--explain", action="store_true", help="also print Task 02's plans at 10k, 100k, 1M visits")
    parser.add_argument("--explain-sizes", type=int_list, default=list(EXPLAIN_SIZES),
                        help="visits per --explain plan (10000,100000,1000000)")
    parser.add_argument("--database-url", help="server to create the benchmark's database on "
                                               "(default: $DATABASE_URL, else the embedded PostgreSQL)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for the JSON and Markdown results")
    args = parser.parse_args(argv)
    if args.visits_per_day < 1 or args.caregivers < 1 or args.repeats < 1 or args.import_repeats < 1:
        parser.error("--visits-per-day, --caregivers, --repeats and --import-repeats must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    report.update(windows=args.windows, repeats=args.repeats)
    text = markdown(report)
    if report.get("user_view"):
        from bench import user_view

        text += "\n\n" + "\n".join(user_view.summary(report["user_view"]))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (args.out / f"bench-{stamp}.json").write_text(json.dumps(report, indent=1, default=str))
    (args.out / f"bench-{stamp}.md").write_text(text + "\n")
    print(text)
    note(f"results in {args.out / f'bench-{stamp}.json'} and .md")
    return 0 if not digests_agree(report) else 1


if __name__ == "__main__":
    sys.exit(main())
