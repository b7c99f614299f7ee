"""``etl-pipeline``: initialise the database, seed it, plan, run (locally or in AWS), inspect, redrive.

Exit codes: 0 success; 1 the run failed (or another run is active); 2 bad input or settings."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NoReturn

from chunking import db, freshness, ledger, report, seed, views
from chunking.console import Progress, duration, table
from chunking.db import PROJECT_ROOT, Connection
from chunking.errors import ConfigError, EtlError, InputError, RunAlreadyActive
from chunking.messages import parse_iso_date
from chunking.pipeline import check_window, default_window
from chunking.preview import preview
from chunking.runner import RunReport, execution_name, follow, run_request
from chunking.settings import Settings

PROG = "etl-pipeline"
MAX_CHUNKS_SHOWN = 60


def runs_dir() -> Path:
    """Where local runs keep their logs and the emulated dead-letter queue (``ETL_RUNS_DIR``)."""
    return Path(os.environ.get("ETL_RUNS_DIR") or PROJECT_ROOT / ".runs")


class OneLineParser(argparse.ArgumentParser):
    """Errors in one line (``etl-pipeline run: error: ...``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def iso_date(text: str) -> date:
    try:
        return parse_iso_date(text, "date")
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = OneLineParser(add_help=False)
    common.add_argument("--database-url", help="PostgreSQL URL (default: $DATABASE_URL, else an embedded "
                                               "PostgreSQL under .pgdata/)")
    parser = OneLineParser(prog=PROG, description="Chunked conflict-map ETL: plan, run, inspect, redrive.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    p_db = sub.add_parser("db", help="database schema")
    db_sub = p_db.add_subparsers(dest="db_command", required=True, parser_class=OneLineParser)
    db_sub.add_parser("init", parents=[common], help="create or upgrade the schemas and tables (safe to repeat)")

    p = sub.add_parser("seed", parents=[common], help="write a synthetic population into analytics.visits")
    p.add_argument("--visits", type=positive, required=True)
    p.add_argument("--start", type=iso_date, required=True)
    p.add_argument("--days", type=positive, required=True)
    p.add_argument("--seed", type=int, default=7)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--replace", action="store_true", help="empty analytics.visits first")
    mode.add_argument("--append", action="store_true", help="add to the visits already there")

    p = sub.add_parser("plan", parents=[common], help="preview a window's chunks, limits and cost (changes nothing)")
    _window_args(p, required=True)
    _chunk_args(p)
    p.add_argument("--max-concurrency", type=positive, help="chunks in flight at once (the plan uses at least as many)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("run", parents=[common], help="run the pipeline over a window")
    p.add_argument("--local", action="store_true", help="run here, through the emulated cloud")
    _window_args(p, required=False)
    _chunk_args(p)
    p.add_argument("--max-concurrency", type=positive, help="chunks in flight at once (Map and workers)")
    p.add_argument("--json", action="store_true", help="end with one JSON line on stdout")
    p.add_argument("--log-file", type=Path, help="write the handlers' JSON log lines here (local runs)")
    p.add_argument("--stack-name", help="the deployed stack to run in (default: $ETL_STACK_NAME); see README, Deploy")
    p.add_argument("--stale", action="store_true", help="recompute only the stale and never-computed days of the "
                                                        "window (default: the last ETL_LOOKBACK_DAYS days)")

    p = sub.add_parser("freshness", parents=[common], help="per day: FRESH, STALE or NEVER computed")
    _window_args(p, required=False)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("status", parents=[common], help="the ledger: runs, chunks, attempts, errors")
    p.add_argument("--run-id", type=positive)
    p.add_argument("--stack-name", help="the deployed stack, to tell whether a RUNNING run's execution lives")
    p.add_argument("--limit", type=positive, default=20)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("report", parents=[common], help="write a run's report: one self-contained HTML page")
    p.add_argument("--run-id", type=positive, required=True)
    p.add_argument("--out", type=Path, help="the HTML file to write (default: run-R-report.html here)")

    p = sub.add_parser("redrive", parents=[common], help="re-process the failed chunks of a run and finish it")
    p.add_argument("--run-id", type=positive, required=True)
    p.add_argument("--chunk-id", type=positive, action="append", dest="chunk_ids",
                   help="only this chunk (repeatable)")
    p.add_argument("--local", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="list what would be redriven, change nothing")
    p.add_argument("--stack-name", help="the deployed stack of the run (default: $ETL_STACK_NAME)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--max-concurrency", type=positive)

    p = sub.add_parser("abandon", parents=[common], help="mark a dead run ABANDONED so a new run can start")
    p.add_argument("--run-id", type=positive, required=True)
    p.add_argument("--stale-after", type=int, default=300, metavar="SECONDS",
                   help="heartbeat age after which a run with no live driver counts as dead (default 300)")
    p.add_argument("--stack-name", help="the deployed stack, to ask whether the run's execution still runs")
    p.add_argument("--force", action="store_true",
                   help="abandon even when the driver's liveness cannot be checked (the heartbeat still must be stale)")
    return parser


def _window_args(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--start", type=iso_date, required=required, help="first service date (YYYY-MM-DD)")
    p.add_argument("--end", type=iso_date, required=required, help="last service date, inclusive")


def _chunk_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chunk-days", type=positive, help="at most this many days per chunk")
    p.add_argument("--max-chunk-rows", type=positive, help="at most this many staged visits per chunk")


# --- commands ------------------------------------------------------------------------------------------------

def cmd_db_init(args: argparse.Namespace, conn: Connection, settings: Settings) -> int:
    applied = db.migrate(conn)
    version = db.schema_version(conn)
    print(f"schema at version {version}" + (f" (applied {', '.join(applied)})" if applied else " (up to date)"))
    return 0


def cmd_seed(args: argparse.Namespace, conn: Connection, settings: Settings) -> int:
    db.require_schema(conn)
    mode = "replace" if args.replace else "append" if args.append else "refuse"
    result = seed.seed_visits(conn, visits=args.visits, start=args.start, days=args.days, seed=args.seed, mode=mode)
    end = date.fromordinal(args.start.toordinal() + args.days - 1)
    print(f"seeded {result['visits']:,} visits from {args.start} to {end} (ids from {result['first_id']:,}, "
          f"seed {args.seed})")
    return 0


def cmd_plan(args: argparse.Namespace, conn: Connection, settings: Settings) -> int:
    db.require_schema(conn)
    check_window(args.start, args.end, settings.max_window_days)
    shown = preview(conn, settings, args.start, args.end, chunk_days=args.chunk_days or settings.chunk_days,
                    fixed_rows=args.max_chunk_rows or settings.max_chunk_rows,
                    concurrency=args.max_concurrency or settings.max_concurrency)
    if args.json:
        print(json.dumps(shown.as_dict()))
    else:
        print(views.plan_preview(shown))
    return 0 if shown.budget.fits else 1


def cmd_run(args: argparse.Namespace, conn: Connection, settings: Settings) -> int:
    db.require_schema(conn)
    if (args.start is None) != (args.end is None):
        raise InputError("give both --start and --end, or neither (the scheduled default window)")
    if args.start and args.end:
        check_window(args.start, args.end, settings.max_window_days)
        start, end = args.start, args.end
    else:
        start, end = default_window(datetime.now(UTC), settings.timezone,
                                    settings.lookback_days if args.stale else settings.default_window_days)
    ledger.raise_if_active(conn)
    conn.rollback()
    executor = ledger.local_executor() if args.local else None  # in AWS the execution itself drives the run
    payload = run_request(start, end, chunk_days=args.chunk_days, max_chunk_rows=args.max_chunk_rows,
                          max_concurrency=args.max_concurrency, trigger="cli", executor=executor, stale=args.stale)
    name = execution_name("cli-stale" if args.stale else "cli", start, end)
    with _cloud(args, settings, name) as cloud:
        if not args.json:
            print(f"run {start}..{end} as execution {name}", file=sys.stderr)
        report = follow(cloud, conn, name=name, payload=payload, run_id=None, progress=Progress())
    return _report(args, report)


def cmd_freshness(args: argparse.Namespace, conn: Connection, settings: Settings) -> int:
    db.require_schema(conn)
    if (args.start is None) != (args.end is None):
        raise InputError("give both --start and --end, or neither (the lookback horizon, ETL_LOOKBACK_DAYS)")
    start, end = (args.start, args.end) if args.start and args.end else \
        default_window(datetime.now(UTC), settings.timezone, settings.lookback_days)
    check_window(start, end, settings.max_window_days)
    days = freshness.day_states(conn, start, end)
    print(json.dumps(freshness.as_json(days)) if args.json else freshness.calendar(days))
    return 0


def cmd_status(args: argparse.Namespace, conn: Connection, settings: Settings) -> int:
    db.require_schema(conn)
    if args.run_id:
        run = ledger.get_run(conn, args.run_id)
        chunks = ledger.list_chunks(conn, args.run_id)
        attempts = ledger.list_attempts(conn, args.run_id)
        conn.rollback()
        if args.json:
            print(json.dumps(views.json_ready({"run": run, "chunks": chunks, "attempts": attempts})))
        else:
            print(views.run_summary(run, chunks))
            print()
            print(views.chunk_table(chunks))
            if run["status"] == "RUNNING":
                print()
                print(_liveness_line(run, args.stack_name))
        return 0
    runs = ledger.list_runs(conn, args.limit)
    conn.rollback()
    if args.json:
        print(json.dumps(views.json_ready(runs)))
    elif not runs:
        print("no runs yet: `etl-pipeline run --local --start YYYY-MM-DD --end YYYY-MM-DD`")
    else:
        print(views.runs_table(runs))
    return 0


def cmd_report(args: argparse.Namespace, conn: Connection, settings: Settings) -> int:
    db.require_schema(conn)
    out = args.out or Path(f"run-{args.run_id}-report.html")
    page = report.render(report.gather(conn, args.run_id))
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    print(f"wrote the report of run {args.run_id} to {out}")
    return 0


def cmd_redrive(args: argparse.Namespace, conn: Connection, settings: Settings) -> int:
    db.require_schema(conn)
    run = ledger.get_run(conn, args.run_id)
    pending = ledger.unfinished_chunks(conn, args.run_id)
    conn.rollback()
    if args.chunk_ids:
        unknown = sorted(set(args.chunk_ids) - {c["chunk_id"] for c in pending})
        if unknown:
            raise InputError(f"run {args.run_id} has no unfinished chunk {', '.join(map(str, unknown))}")
        pending = [c for c in pending if c["chunk_id"] in set(args.chunk_ids)]
    if run["status"] != "FAILED" and not args.dry_run:
        raise InputError(f"run {args.run_id} is {run['status']}: only a FAILED run can be redriven")
    if not pending:
        raise InputError(f"run {args.run_id} has no unfinished chunks to redrive")
    name = execution_name("redrive", args.run_id, run["redrives"] + 1)
    with _cloud(args, settings, name) as cloud:
        if args.dry_run:
            letters = _letters_by_chunk(cloud.dead_letters(), args.run_id)
            _print_redrive_plan(args, run, pending, letters)
            return 0
        ledger.raise_if_active(conn, except_run=args.run_id)
        conn.rollback()
        payload = {"trigger": "redrive", "redrive_run_id": args.run_id,
                   "redrive_chunk_ids": [c["chunk_id"] for c in pending]}
        if args.local:  # in AWS the execution itself drives the run
            payload["executor"] = ledger.local_executor()
        if args.max_concurrency:
            payload["max_concurrency"] = args.max_concurrency
        if not args.json:
            print(f"redrive {len(pending)} chunk(s) of run {args.run_id} as execution {name}", file=sys.stderr)
        report = follow(cloud, conn, name=name, payload=payload, run_id=args.run_id, progress=Progress(),
                        only_chunks={c["chunk_id"] for c in pending})
        done = {c["chunk_id"] for c in report.chunks if c["status"] in ("SUCCEEDED", "SUPERSEDED")}
        removed = cloud.dead_letters(delete=lambda letter: _letter_chunk(letter, args.run_id) in done)
        cleared = sum(1 for letter in removed if _letter_chunk(letter, args.run_id) in done)
    if not args.json:
        print(f"dead-letter messages of redriven chunks removed: {cleared}", file=sys.stderr)
    return _report(args, report, dead_letters_removed=cleared)


def cmd_abandon(args: argparse.Namespace, conn: Connection, settings: Settings) -> int:
    db.require_schema(conn)
    run = ledger.get_run(conn, args.run_id)
    conn.rollback()
    if run["status"] == "RUNNING":
        alive, why = _driver_alive(run, args.stack_name)
        age = _heartbeat_age(run)
        if alive:
            raise InputError(f"run {args.run_id} is alive ({why}); it cannot be abandoned")
        if alive is None and not args.force:
            raise InputError(f"run {args.run_id} cannot be proven dead: {why}; pass --stack-name, or --force if "
                             "you know its driver is gone")
        if age < args.stale_after:
            raise InputError(f"run {args.run_id} sent a heartbeat {age:.0f}s ago, under --stale-after "
                             f"{args.stale_after}s; wait, or check it is really dead ({why})")
        reason = f"abandoned: {why}, heartbeat {age:.0f}s old"
    elif run["status"] == "FAILED":
        reason = "abandoned after failing (not redriven)"
    else:
        raise InputError(f"run {args.run_id} is {run['status']}: only a RUNNING or FAILED run can be abandoned")
    result = ledger.abandon_run(conn, args.run_id, reason)
    print(f"run {args.run_id} ABANDONED ({reason}); {result['chunks_abandoned']} unfinished chunk(s) marked FAILED")
    return 0


# --- helpers -------------------------------------------------------------------------------------------------

def _cloud(args: argparse.Namespace, settings: Settings, name: str) -> Any:
    if not getattr(args, "local", False):
        from chunking.aws import AwsCloud

        return AwsCloud(getattr(args, "stack_name", None))
    from chunking.emulator import LocalCloud, LocalOptions

    concurrency = getattr(args, "max_concurrency", None) or settings.max_concurrency
    options = LocalOptions(max_concurrency=concurrency, max_receive_count=settings.max_receive_count,
                           worker_timeout_s=settings.worker_timeout_s,
                           retry_base_ms=min(settings.retry_base_ms, 1_000),
                           retry_max_ms=min(settings.retry_max_ms, 10_000))
    log_path = getattr(args, "log_file", None) or runs_dir() / "logs" / f"{name}.jsonl"
    env = {k: v for k, v in os.environ.items() if k.startswith("ETL_")}
    return LocalCloud(args.database_url, options=options, state_dir=runs_dir() / "local", env=env, log_path=log_path)


def _report(args: argparse.Namespace, report: RunReport, **extra: Any) -> int:
    """The outcome: one JSON line with --json, else the run summary and its chunks. Exit 0 only on success."""
    if args.json:
        summary = views.run_json(report.run, report.chunks, execution_status=report.execution_status,
                                 metrics=report.metrics, **extra)
        if report.execution_status != "SUCCEEDED":
            summary["error"] = summary.get("error") or report.error
        print(json.dumps(views.json_ready(summary)))
    elif report.run is None:
        print(f"{PROG}: error: {report.error}", file=sys.stderr)
    else:
        print(views.run_summary(report.run, report.chunks))
        shown = report.chunks if len(report.chunks) <= MAX_CHUNKS_SHOWN else \
            [c for c in report.chunks if c["status"] != "SUCCEEDED"][:MAX_CHUNKS_SHOWN]
        if shown:
            print()
            print(views.chunk_table(shown))
        if len(shown) < len(report.chunks):
            print(f"({len(report.chunks) - len(shown)} more chunks: `{PROG} status --run-id {report.run['run_id']}`)")
        if report.metrics:
            print("\nmetrics (CloudWatch EMF, as the handlers emitted them):")
            print(views.metrics_table(report.metrics))
        if not report.succeeded and report.error and report.error not in (report.run.get("error") or ""):
            print(f"\nexecution: {report.error}")
    return 0 if report.succeeded else 1


def _letter_chunk(letter: dict[str, Any], run_id: int) -> int | None:
    body = letter.get("body") or {}
    return body.get("chunk_id") if body.get("run_id") == run_id else None


def _letters_by_chunk(letters: list[dict[str, Any]], run_id: int) -> dict[int, dict[str, Any]]:
    return {cid: letter for letter in letters if (cid := _letter_chunk(letter, run_id)) is not None}


def _print_redrive_plan(args: argparse.Namespace, run: dict[str, Any], pending: list[dict[str, Any]],
                        letters: dict[int, dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    rows = []
    for c in pending:
        since = c["finished_at"] or c["queued_at"]
        age = (now - since).total_seconds() if since else None
        rows.append({"chunk_id": c["chunk_id"], "chunk_start": c["chunk_start"].isoformat(),
                     "chunk_end": c["chunk_end"].isoformat(), "status": c["status"], "attempts": c["attempts"],
                     "last_error": c["last_error"], "age_s": round(age) if age is not None else None,
                     "in_dead_letter_queue": c["chunk_id"] in letters})
    if args.json:
        print(json.dumps({"run_id": run["run_id"], "status": run["status"], "would_redrive": rows}))
        return
    print(f"run {run['run_id']} ({run['status']}): {len(rows)} chunk(s) would be redriven (dry run, nothing changed)")
    print(table(["chunk", "range", "status", "attempts", "age", "in DLQ", "last error"],
                [[r["chunk_id"], f"{r['chunk_start']}..{r['chunk_end']}", r["status"], r["attempts"],
                  duration(r["age_s"]), "yes" if r["in_dead_letter_queue"] else "no", r["last_error"]]
                 for r in rows]))


def _heartbeat_age(run: dict[str, Any]) -> float:
    return (datetime.now(UTC) - run["heartbeat_at"]).total_seconds()


def _driver_alive(run: dict[str, Any], stack_name: str | None = None) -> tuple[bool | None, str]:
    """Is whatever drives a RUNNING run still alive? A local run: its process on this host. A run in AWS:
    its execution, asked of Step Functions when the stack is known. ``None`` when it cannot be told."""
    executor = str(run.get("executor") or run["execution_name"])
    if executor.startswith("local:"):
        _, host, pid = executor.split(":", 2)
        if host != socket.gethostname():
            return None, f"driven from another host ({host}), liveness unknown"
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False, f"its process {pid} is gone"
        except (PermissionError, ValueError):
            return True, f"its process {pid} exists"
        return True, f"its process {pid} is running"
    try:
        from chunking.aws import execution_status

        status = execution_status(executor, stack_name)
    except EtlError as exc:
        return None, f"its execution {executor} cannot be checked from here ({exc})"
    return status == "RUNNING", f"its execution {executor} is {status}"


def _liveness_line(run: dict[str, Any], stack_name: str | None = None) -> str:
    alive, why = _driver_alive(run, stack_name)
    return (f"liveness: {why}; last heartbeat {_heartbeat_age(run):.0f}s ago"
            + ("" if alive else f" — if it is dead: {PROG} abandon --run-id {run['run_id']}"))


COMMANDS = {"init": cmd_db_init, "seed": cmd_seed, "plan": cmd_plan, "run": cmd_run, "freshness": cmd_freshness,
            "status": cmd_status,
            "report": cmd_report, "redrive": cmd_redrive, "abandon": cmd_abandon}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.db_command if args.command == "db" else args.command
    try:
        settings = Settings.from_env()
        in_aws = command in ("run", "redrive") and not args.local
        if in_aws and not (args.database_url or os.environ.get("DATABASE_URL")):
            raise ConfigError(f"{command} in AWS follows the run in the deployed database's ledger: give it with "
                              "--database-url or DATABASE_URL (or use --local to run on this machine)")
        args.database_url = db.resolve_database_url(args.database_url)
        conn = db.connect(args.database_url, application_name=f"{PROG} {command}")
        try:
            return COMMANDS[command](args, conn, settings)
        finally:
            conn.close()
    except RunAlreadyActive as exc:
        print(f"{PROG} {command}: error: {exc}", file=sys.stderr)
        return 1
    except EtlError as exc:
        print(f"{PROG} {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{PROG} {command}: interrupted; `{PROG} status` shows what ran", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
