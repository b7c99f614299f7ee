"""``etl-pipeline``: initialise the database, seed it, plan, run (locally or in AWS), inspect, redrive.

Built on click (as dbt, the SAM CLI and Dagster are): shared options are defined once below (``--- params``),
:func:`command` does the preflight (settings, database, schema) for every command, and each command is a small
function: take its options, call one core function, render (``--- commands``). Output goes through rich
(:mod:`chunking.console`, :mod:`chunking.views`).

Exit codes: 0 success; 1 the run failed (or another run is active); 2 bad input or settings; 130 interrupted;
141 the reader of our output went away."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import click
from rich.console import Console, RenderableType
from rich.text import Text

from chunking import db, freshness, ledger, logs, report, seed, views
from chunking.console import PipeClosed, Progress, make_console, write_plain
from chunking.db import PROJECT_ROOT, Connection
from chunking.errors import ConfigError, EtlError, InputError, RunAlreadyActive
from chunking.ledger import Chunk, Run, RunStatus
from chunking.liveness import driver_alive
from chunking.messages import parse_iso_date
from chunking.pipeline import check_window, default_window
from chunking.preview import preview
from chunking.runner import Cloud, RunReport, RunStopped, execution_name, follow, run_request
from chunking.settings import (
    CHUNK_DAYS,
    LOOKBACK_DAYS,
    MAX_CHUNK_ROWS,
    MAX_CONCURRENCY,
    MAX_CONCURRENCY_LIMIT,
    Settings,
)
from chunking.wording import counted

PROG = "etl-pipeline"
PACKAGE = "conflict-map-etl"
DEFAULTS = Settings()  # the dataclass defaults, shown in the help (never retyped here)
MAX_CONCURRENCY_BOUNDS = (1, MAX_CONCURRENCY_LIMIT)  # as Settings.from_env bounds ETL_MAX_CONCURRENCY
INT4_MAX = 2**31 - 1  # etl.runs.max_chunk_rows is an integer column
BIGINT_MAX = 2**63 - 1
STATUS_LIMIT_MAX = 10_000
RUN_STATES = ledger.RUN_STATES
RUNS_DIR_ENV = "ETL_RUNS_DIR"
STACK_NAME_ENV = "ETL_STACK_NAME"


def runs_dir() -> Path:
    """Where local runs keep their logs and the emulated dead-letter queue (``ETL_RUNS_DIR``)."""
    return Path(os.environ.get(RUNS_DIR_ENV) or PROJECT_ROOT / ".runs")


# --- state shared by the options of the group and of its commands ---------------------------------------------

@dataclasses.dataclass
class State:
    """The global options (given before or after the command) and the consoles."""

    database_url: str | None = None
    json: bool = False
    quiet: bool = False
    debug: bool = False
    command: str = PROG
    out: Console = dataclasses.field(default_factory=make_console)
    err: Console = dataclasses.field(default_factory=lambda: make_console(stderr=True))

    def print(self, *items: RenderableType) -> None:
        """Human output on stdout (nothing with --json)."""
        if not self.json:
            for item in items:  # a Text marked to wrap (views.wrapped) wraps; other lines are left whole
                self.out.print(item, soft_wrap=not (isinstance(item, Text) and item.no_wrap is False))

    def say(self, text: str | Text) -> None:
        """A note on stderr (nothing with --quiet or --json)."""
        if not (self.quiet or self.json):
            self.err.print(views.wrapped(text), soft_wrap=False)

    def emit_json(self, value: Any) -> None:
        write_plain(json.dumps(views.json_ready(value)) + "\n")


def _state() -> State:
    return click.get_current_context().find_object(State) or State()


# --- params: every option once, with its help, default, variable and bounds -------------------------------------

class Whole(click.ParamType):
    """A whole number within bounds, checked at parse time (the message names the flag)."""

    name = "integer"

    def __init__(self, minimum: int, maximum: int | None = None) -> None:
        self.minimum, self.maximum = minimum, maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                self.fail(f"must be a whole number, got {value!r}", param, ctx)
        if number < self.minimum:
            self.fail(f"must be at least {self.minimum}, got {number}", param, ctx)
        if self.maximum is not None and number > self.maximum:
            self.fail(f"must be at most {self.maximum:,}, got {number}", param, ctx)
        return number

    def get_metavar(self, param: click.Parameter, *args: Any) -> str:  # noqa: ARG002 - click's signature
        return "N"


class IsoDate(click.ParamType):
    name = "date"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            return parse_iso_date(value, "date")
        except InputError as exc:
            self.fail(str(exc), param, ctx)

    def get_metavar(self, param: click.Parameter, *args: Any) -> str:  # noqa: ARG002 - click's signature
        return "YYYY-MM-DD"


def describe(text: str, *, default: Any = None, env: str | None = None, bounds: str | None = None,
             required: bool = False) -> str:
    """Help text with its facts in click's bracket style: ``[required; env var: X; default: 31; 1..40]``."""
    facts = ["required"] if required else []
    if env:
        facts.append(f"env var: {env}")
    if default is not None:
        facts.append(f"default: {default}")
    if bounds:
        facts.append(bounds)
    return f"{text}  [{'; '.join(facts)}]" if facts else text


def _bounds(minimum: int, maximum: int | None) -> str:
    return f"{minimum:,}..{maximum:,}" if maximum is not None else f"at least {minimum:,}"


def _remember(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:  # noqa: ARG001 - click's callback
        if value not in (None, False):
            setattr(ctx.ensure_object(State), name, value)
        return value
    return store


GLOBAL_OPTIONS = (
    click.option("--database-url", metavar="URL", expose_value=False, callback=_remember("database_url"),
                 help=describe("PostgreSQL URL of the ledger and the tables; with neither it nor DATABASE_URL, "
                               "local commands start an embedded PostgreSQL under .pgdata/",
                               env="DATABASE_URL", default="an embedded PostgreSQL")),
    click.option("--json", "json_", is_flag=True, expose_value=False, callback=_remember("json"),
                 help="Print JSON on stdout instead of text (errors too: {\"error\": ..., \"exit_code\": N})."),
    click.option("--quiet", "-q", is_flag=True, expose_value=False, callback=_remember("quiet"),
                 help="No progress and no notes on stderr; results and errors only."),
    click.option("--debug", is_flag=True, expose_value=False, callback=_remember("debug"),
                 help="On an error, print its traceback too."),
)


def global_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command takes, accepted before the command and after it."""
    for option in reversed(GLOBAL_OPTIONS):
        f = option(f)
    return f


def _window_options(required: bool, default_text: str = "the scheduled window") -> list[Callable[..., Any]]:
    after = "" if required else "; give both or neither"
    default = None if required else default_text
    return [
        click.option("--start", type=IsoDate(), required=required,
                     help=describe(f"First service date of the window{after}.", required=required, default=default)),
        click.option("--end", type=IsoDate(), required=required,
                     help=describe(f"Last service date of the window, inclusive{after}.", required=required,
                                   default=default)),
    ]


CHUNK_DAYS_OPTION = click.option(
    "--chunk-days", type=Whole(1, DEFAULTS.max_window_days),
    help=describe("At most this many days per chunk (a stale run's: of the days it computes, not of its range).",
                  env=CHUNK_DAYS, default=DEFAULTS.chunk_days,
                  bounds=_bounds(1, DEFAULTS.max_window_days)))
MAX_CHUNK_ROWS_OPTION = click.option(
    "--max-chunk-rows", type=Whole(1, INT4_MAX),
    help=describe("At most this many staged visits per chunk; also turns off adaptive sizing.", env=MAX_CHUNK_ROWS,
                  default="adaptive, sized from measured throughput", bounds=_bounds(1, INT4_MAX)))
MAX_CONCURRENCY_OPTION = click.option(
    "--max-concurrency", type=Whole(*MAX_CONCURRENCY_BOUNDS),
    help=describe("Chunks in flight at once (the Map and, locally, the workers).", env=MAX_CONCURRENCY,
                  default=DEFAULTS.max_concurrency, bounds=_bounds(*MAX_CONCURRENCY_BOUNDS)))
RUN_ID_OPTION = click.option("--run-id", type=Whole(1, BIGINT_MAX), required=True,
                             help=describe("The run, as `etl-pipeline status` lists it.", required=True))
STACK_NAME_OPTION = click.option(
    "--stack-name", metavar="NAME",
    help=describe("The deployed stack of runs in AWS (see README, Deploy).", env=STACK_NAME_ENV,
                  default="none (or STATE_MACHINE_ARN and CHUNK_DLQ_URL)"))
METRICS_OPTION = click.option("--metrics", is_flag=True,
                              help="Also print the run's metrics (CloudWatch EMF, as the handlers emitted them).")


def options(*decorators: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f
    return apply


# --- the group and the preflight --------------------------------------------------------------------------------

class EtlGroup(click.Group):
    """Commands in the order a newcomer uses them; a mistyped command gets suggestions; a bare call, usage."""

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002 - click's signature
        return list(self.commands)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise click.UsageError(f"invalid choice: {name!r} (choose from {', '.join(self.list_commands(ctx))})"
                                   f"{hint}", ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        if not ctx.protected_args and not ctx.args:
            click.echo(ctx.get_help(), err=True)
            raise click.exceptions.Exit(2)
        return super().invoke(ctx)


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def command(group: click.Group, name: str, short: str, *, connect: bool = True, schema: bool = True,
            epilog: str = "",
            check: Callable[[State, dict[str, Any]], None] | None = None,
            ) -> Callable[[Callable[..., int]], click.Command]:
    """A command of ``group``: the global options, then the preflight (settings, ``check`` of the options,
    the database connection, the schema check) before the body, which gets its options and, by keyword, what it
    names of ``state``, ``conn``, ``settings`` and ``url``, and returns the exit code. ``{default_window_days}``
    in its docstring shows that default."""
    def wrap(body: Callable[..., int]) -> click.Command:
        @functools.wraps(body)
        def run(**kwargs: Any) -> int:
            state = _state()
            state.command = click.get_current_context().command_path
            settings = Settings.from_env()
            if check:
                check(state, kwargs)
            if not connect:
                return body(**_wanted(state=state, settings=settings), **kwargs)
            url = db.resolve_database_url(state.database_url)
            conn = db.connect(url, application_name=f"{PROG} {name}")
            try:
                if schema:
                    db.require_schema(conn)
                return body(**_wanted(state=state, conn=conn, settings=settings, url=url), **kwargs)
            finally:
                conn.close()

        wanted_names = set(inspect.signature(body).parameters)

        def _wanted(**given: Any) -> dict[str, Any]:  # what the body asks for of the preflight's values
            return {k: v for k, v in given.items() if k in wanted_names}

        doc = (body.__doc__ or "").strip().replace("{default_window_days}", str(DEFAULTS.default_window_days))
        decorated = global_options(run)
        return group.command(name, help=doc, short_help=short, epilog=f"\b\n{epilog.strip()}" if epilog else None,
                             context_settings=CONTEXT)(decorated)
    return wrap


@click.group(PROG, cls=EtlGroup, context_settings=CONTEXT, invoke_without_command=True,
             epilog="\b\nStart here:\n  etl-pipeline db init\n  etl-pipeline seed --visits 20000 --start 2026-10-01 "
                    "--days 30\n  etl-pipeline run --local --start 2026-10-01 --end 2026-10-30\n"
                    "  etl-pipeline status\n\nRun `etl-pipeline COMMAND --help` for a command's options and "
                    "examples.")
@click.version_option(package_name=PACKAGE, prog_name=PROG, message="%(prog)s %(version)s")
@global_options
def cli() -> None:
    """Chunked conflict-map ETL: plan a window, run it (here or in AWS), inspect the ledger, redrive.

    Settings come from ETL_* environment variables (the command options below override them for one run);
    a run in AWS uses the deployed stack's settings."""


@cli.group("db", cls=EtlGroup, context_settings=CONTEXT, invoke_without_command=True)
@global_options
def db_group() -> None:
    """The database schema."""


# --- commands ---------------------------------------------------------------------------------------------------

@command(db_group, "init", "create or upgrade the schemas and tables", schema=False,
         epilog="Example:\n  etl-pipeline db init")
def cmd_db_init(state: State, conn: Connection) -> int:
    """Create or upgrade the schemas and tables (safe to repeat)."""
    applied = db.migrate(conn)
    version = db.schema_version(conn)
    if state.json:
        state.emit_json({"schema_version": version, "applied": applied})
    else:
        state.print(f"schema at version {version}" + (f" (applied {', '.join(applied)})" if applied
                                                      else " (up to date)"))
    return 0


def _seed_check(state: State, options: dict[str, Any]) -> None:  # noqa: ARG001 - a check's signature
    if options["replace"] and options["append"]:
        raise click.UsageError("--replace and --append exclude each other")


@command(cli, "seed", "write a synthetic population of visits", check=_seed_check,
         epilog="Example:\n  etl-pipeline seed --visits 20000 --start 2026-10-01 --days 30 --replace")
@options(
    click.option("--visits", type=Whole(1, INT4_MAX), required=True,
                 help=describe("How many visits to write.", required=True, bounds=_bounds(1, INT4_MAX))),
    click.option("--start", type=IsoDate(), required=True, help=describe("First service date.", required=True)),
    click.option("--days", type=Whole(1, 10 * DEFAULTS.max_window_days), required=True,
                 help=describe("How many days of visits, from --start.", required=True,
                               bounds=_bounds(1, 10 * DEFAULTS.max_window_days))),
    click.option("--seed", "seed_", type=int, default=7, show_default=True,
                 help=describe("Random seed: the same seed writes the same population.", default=7)),
    click.option("--replace", is_flag=True, help="Empty analytics.visits first."),
    click.option("--append", is_flag=True, help="Add to the visits already there."),
)
def cmd_seed(state: State, conn: Connection, visits: int, start: date, days: int,
             seed_: int, replace: bool, append: bool) -> int:
    """Write a synthetic population into analytics.visits (refuses to mix with existing visits unless
    --replace or --append)."""
    mode = "replace" if replace else "append" if append else "refuse"
    result = seed.seed_visits(conn, visits=visits, start=start, days=days, seed=seed_, mode=mode)
    end = date.fromordinal(start.toordinal() + days - 1)
    if state.json:
        state.emit_json({**result, "start": start, "end": end, "seed": seed_})
    else:
        state.print(f"seeded {result['visits']:,} visits from {start} to {end} (ids from {result['first_id']:,}, "
                    f"seed {seed_})")
    return 0


@command(cli, "plan", "preview a window's chunks, limits and cost",
         epilog="Example:\n  etl-pipeline plan --start 2026-10-01 --end 2026-10-30 --max-concurrency 2")
@options(*_window_options(required=True), CHUNK_DAYS_OPTION, MAX_CHUNK_ROWS_OPTION, MAX_CONCURRENCY_OPTION,
         click.option("--stale", is_flag=True, help=describe("Preview a stale run: only the days not FRESH now, each "
                                                              "with why.", default="off")))
def cmd_plan(state: State, conn: Connection, settings: Settings, start: date, end: date,
             chunk_days: int | None, max_chunk_rows: int | None, max_concurrency: int | None, stale: bool) -> int:
    """Preview a window's chunks, the limits of one execution and its cost in AWS (changes nothing).

    Exits 1 when the plan does not fit one execution."""
    check_window(start, end, settings.max_window_days)
    shown = preview(conn, settings, start, end, chunk_days=chunk_days or settings.chunk_days,
                    fixed_rows=max_chunk_rows or settings.max_chunk_rows,
                    concurrency=max_concurrency or settings.max_concurrency, stale=stale)
    if state.json:
        write_plain(json.dumps(shown.as_dict()) + "\n")
    else:
        state.print(*views.plan_preview(state.out, shown))
    return 0 if shown.budget.fits else 1


def _run_check(state: State, options: dict[str, Any]) -> None:
    if not options["local"]:
        _require_deployed_database(state, "run")


@command(cli, "run", "run the pipeline over a window (here or in AWS)", check=_run_check,
         epilog="""Examples:
  etl-pipeline run --local --start 2026-10-01 --end 2026-10-30
  etl-pipeline run --local --stale          (only the days whose source changed, over the lookback horizon)
  etl-pipeline run --local --max-concurrency 2 --json
  etl-pipeline run --start 2026-10-01 --end 2026-10-07 --stack-name conflict-map   (in AWS)""")
@options(
    click.option("--local", is_flag=True,
                 help="Run on this machine, through the emulated cloud. Without it the run starts the deployed "
                      "state machine in AWS (--stack-name) and follows it in the deployed database."),
    *_window_options(required=False), CHUNK_DAYS_OPTION, MAX_CHUNK_ROWS_OPTION, MAX_CONCURRENCY_OPTION,
    click.option("--log-file", type=click.Path(dir_okay=False, writable=True, path_type=Path),
                 help=describe("Write the handlers' JSON log lines here (local runs).",
                               default=".runs/logs/<execution>.jsonl (under $ETL_RUNS_DIR when set)",
                               env=RUNS_DIR_ENV)),
    click.option("--stale", is_flag=True,
                 help=describe("Recompute only the stale and never-computed days of the window (docs/freshness.md); "
                               "without --start/--end the window is the lookback horizon: the last "
                               "ETL_LOOKBACK_DAYS days up to yesterday.", default=DEFAULTS.lookback_days,
                               env=LOOKBACK_DAYS)),
    STACK_NAME_OPTION, METRICS_OPTION,
)
def cmd_run(state: State, conn: Connection, settings: Settings, url: str, local: bool, start: date | None,
            end: date | None, chunk_days: int | None, max_chunk_rows: int | None, max_concurrency: int | None,
            log_file: Path | None, stale: bool, stack_name: str | None, metrics: bool) -> int:
    """Run the pipeline over a window and follow it to its end; exit 0 only when the run succeeded.

    Without --local the run targets AWS: the deployed stack's state machine, followed through the deployed
    database's ledger (--database-url or DATABASE_URL). Without --start and --end it runs the scheduled window:
    the last ETL_DEFAULT_WINDOW_DAYS days (default {default_window_days}) up to yesterday, in ETL_TIMEZONE."""
    if (start is None) != (end is None):
        raise InputError("give both --start and --end, or neither (the scheduled default window)")
    if start and end:
        check_window(start, end, settings.max_window_days)
    else:
        start, end = default_window(datetime.now(UTC), settings.timezone,
                                    settings.lookback_days if stale else settings.default_window_days)
        check_window(start, end, settings.max_window_days)
    ledger.raise_if_active(conn)
    executor = ledger.local_executor() if local else None  # in AWS the execution itself drives the run
    payload = run_request(start, end, chunk_days=chunk_days, max_chunk_rows=max_chunk_rows,
                          max_concurrency=max_concurrency, trigger="cli", executor=executor, stale=stale)
    name = execution_name("cli-stale" if stale else "cli", start, end)
    target = Target(local=local, stack_name=stack_name, database_url=url, log_file=log_file,
                    max_concurrency=max_concurrency)
    state.say(f"run {start}..{end} as execution {name}" + ("" if local else " in AWS"))
    outcome = _follow(state, conn, settings, target, name, payload, run_id=None, only=None)
    return _finish(state, outcome, target, show_metrics=metrics)


@command(cli, "freshness", "per day: is the conflict map current (FRESH), STALE, or NEVER computed",
         epilog="""Examples:
  etl-pipeline freshness                                (the lookback horizon)
  etl-pipeline freshness --start 2026-09-01 --end 2026-09-30 --json
  etl-pipeline freshness --html freshness.html""")
@options(
    *_window_options(required=False, default_text="the lookback horizon: the last ETL_LOOKBACK_DAYS days up to "
                                                  "yesterday"),
    click.option("--html", "html_out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
                 help=describe("Also write the calendar as a self-contained HTML page (each day linked to its run's "
                               "report).", default="no page")),
)
def cmd_freshness(state: State, conn: Connection, settings: Settings, start: date | None,
                  end: date | None, html_out: Path | None) -> int:
    """Per day of the range: FRESH (computed from the current source rows), STALE (the source changed since, or a
    day it depends on did) or NEVER (no run computed it), with the run that last computed it and when. Asking
    changes nothing; `run --stale` recomputes exactly the days that are not FRESH."""
    if (start is None) != (end is None):
        raise InputError("give both --start and --end, or neither (the lookback horizon, ETL_LOOKBACK_DAYS)")
    if start is None or end is None:
        start, end = default_window(datetime.now(UTC), settings.timezone, settings.lookback_days)
    check_window(start, end, settings.max_window_days)
    days = freshness.day_states(conn, start, end)
    if html_out is not None:
        page = report.render_freshness(days, title=f"Freshness {start}..{end}")
        try:
            html_out.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write the page to {html_out}: {exc.strerror or exc}") from None
    if state.json:
        write_plain(json.dumps(freshness.as_json(days)) + "\n")
    else:
        state.print(freshness.calendar(days))
        if any(d.state != "FRESH" for d in days):
            state.print("", f"recompute them: `{PROG} run --local --stale --start {start} --end {end}`")
        if html_out is not None:
            state.print(f"wrote the calendar to {html_out}")
    return 0


@command(cli, "status", "the ledger: runs, or one run's chunks",
         epilog="""Examples:
  etl-pipeline status
  etl-pipeline status --state failed --since 2026-11-01
  etl-pipeline status --run-id 3""")
@options(
    click.option("--run-id", type=Whole(1, BIGINT_MAX),
                 help=describe("Show this run: its chunks, attempts and errors in full.", default="the latest runs")),
    click.option("--state", "state_", type=click.Choice(RUN_STATES, case_sensitive=False), metavar="STATE",
                 help=describe(f"Only runs in this state: {', '.join(RUN_STATES)} (any case).", default="any")),
    click.option("--since", type=IsoDate(), help=describe("Only runs begun on or after this day (UTC).",
                                                          default="any time")),
    click.option("--limit", type=Whole(1, STATUS_LIMIT_MAX), default=20, show_default=False,
                 help=describe("At most this many runs, newest first.", default=20,
                               bounds=_bounds(1, STATUS_LIMIT_MAX))),
    STACK_NAME_OPTION,
)
def cmd_status(state: State, conn: Connection, run_id: int | None,
               state_: str | None, since: date | None, limit: int, stack_name: str | None) -> int:
    """The ledger: the latest runs, or one run's chunks, attempts, durations and errors."""
    if run_id:
        run = ledger.get_run(conn, run_id)
        chunks = ledger.list_chunks(conn, run_id)
        attempts = ledger.list_attempts(conn, run_id)
        if state.json:
            state.emit_json({"run": run, "chunks": chunks, "attempts": attempts})
            return 0
        state.print(*views.run_summary(run, chunks), "", views.chunk_table(state.out, chunks),
                    *views.error_details(chunks))
        if run.running:
            state.print("", _liveness_line(run, stack_name))
        for line in _next_steps(run):
            state.print(line)
        return 0
    runs = ledger.list_runs(conn, limit, status=state_,
                            since=datetime.combine(since, time(), UTC) if since else None)
    if state.json:
        state.emit_json(runs)
    elif not runs:
        state.print("no runs match" if state_ or since else
                    f"no runs yet: `{PROG} run --local --start YYYY-MM-DD --end YYYY-MM-DD`")
    else:
        state.print(views.runs_table(state.out, runs))
    return 0


@command(cli, "report", "write a run's HTML report",
         epilog="Example:\n  etl-pipeline report --run-id 3 --out run-3.html")
@options(RUN_ID_OPTION, click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
                                     help=describe("The HTML file to write.", default="run-R-report.html here")))
def cmd_report(state: State, conn: Connection, run_id: int, out: Path | None) -> int:
    """Write a run's report: one self-contained HTML page (timeline, chunks, throughput, rejections)."""
    out = out or Path(f"run-{run_id}-report.html")
    data = report.gather(conn, run_id)
    recomputed = [report.RecomputedDay(r["day"], r["reason"], r["cause_day"], r["previous_run_id"])
                  for r in freshness.run_days(conn, run_id)]
    page = report.render(data, recomputed=recomputed)
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    if state.json:
        state.emit_json({"run_id": run_id, "report": str(out)})
    else:
        state.print(f"wrote the report of run {run_id} to {out}")
    return 0


@command(cli, "redrive", "re-process a failed run's chunks and finish it",
         epilog="""Examples:
  etl-pipeline redrive --run-id 3 --dry-run
  etl-pipeline redrive --run-id 3
  etl-pipeline redrive --run-id 3 --chunk-id 2 --chunk-id 5""")
@options(
    RUN_ID_OPTION,
    click.option("--chunk-id", "chunk_ids", type=Whole(1, INT4_MAX), multiple=True,
                 help=describe("Only this chunk (repeatable).", default="every unfinished chunk")),
    click.option("--local", is_flag=True,
                 help="Redrive on this machine even if the ledger says the run ran in AWS (by default a run "
                      "is redriven where it ran: its executor in the ledger tells)."),
    click.option("--dry-run", is_flag=True, help="List what would be redriven, change nothing."),
    STACK_NAME_OPTION, MAX_CONCURRENCY_OPTION, METRICS_OPTION,
)
def cmd_redrive(state: State, conn: Connection, settings: Settings, url: str, run_id: int,
                chunk_ids: tuple[int, ...], local: bool, dry_run: bool, stack_name: str | None,
                max_concurrency: int | None, metrics: bool) -> int:
    """Re-process the unfinished chunks of a FAILED or STOPPED run and finish it, where the run ran: locally for a
    local run, in AWS for a run in AWS; at the run's own max_concurrency unless told otherwise."""
    run = ledger.get_run(conn, run_id)
    pending = ledger.unfinished_chunks(conn, run_id)
    planned = bool(ledger.list_chunks(conn, run_id))
    local = local or run.local
    if not local:
        _require_deployed_database(state, "redrive")
    if chunk_ids:
        pending = ledger.unfinished_chunks(conn, run_id, only=chunk_ids)
    if not dry_run:
        ledger.require_redrivable(run)
    if not pending and (chunk_ids or planned):  # a run that ended before planning is staged and planned afresh
        raise InputError(f"run {run_id} has no unfinished chunks to redrive")
    name = execution_name("redrive", run_id, run.redrives + 1)
    target = Target(local=local, stack_name=stack_name, database_url=url, log_file=None,
                    max_concurrency=max_concurrency or run.max_concurrency)
    if dry_run:
        with target.cloud(settings, name, logs_wanted=False) as cloud:
            letters = _letters_by_chunk(cloud.dead_letters(), run_id)
        _print_redrive_plan(state, run, pending, letters, target)
        return 0
    ledger.raise_if_active(conn, except_run=run_id)
    payload: dict[str, Any] = {"trigger": "redrive", "redrive_run_id": run_id,
                               "redrive_chunk_ids": [c.chunk_id for c in pending]}
    if local:  # in AWS the execution itself drives the run
        payload["executor"] = ledger.local_executor()
    if max_concurrency:
        payload["max_concurrency"] = max_concurrency
    state.say(f"redrive {counted(len(pending), 'chunk')} of run {run_id} as execution {name}"
              + ("" if local else " in AWS"))
    outcome = _follow(state, conn, settings, target, name, payload, run_id=run_id,
                      only={c.chunk_id for c in pending} or None, dead_letters=True)
    return _finish(state, outcome, target, show_metrics=metrics)


@command(cli, "abandon", "close a run whose driver is gone",
         epilog="""Examples:
  etl-pipeline abandon --run-id 3
  etl-pipeline abandon --run-id 3 --stale-after 0 --force""")
@options(
    RUN_ID_OPTION,
    click.option("--stale-after", type=Whole(0, 86_400 * 365), default=300, metavar="SECONDS",
                 help=describe("Heartbeat age after which a run with no live driver counts as dead.", default=300,
                               bounds=_bounds(0, 86_400 * 365))),
    STACK_NAME_OPTION,
    click.option("--force", is_flag=True,
                 help="Abandon even when the driver's liveness cannot be checked (the heartbeat still must be "
                      "stale)."),
)
def cmd_abandon(state: State, conn: Connection, run_id: int, stale_after: int,
                stack_name: str | None, force: bool) -> int:
    """Mark a dead run ABANDONED so a new run can start, with the reason recorded. Whether its driver is dead
    is asked where the run ran: its process for a local run, its execution in AWS for a run there."""
    run = ledger.get_run(conn, run_id)
    if run.running:
        alive, why = _driver_alive(run, stack_name)
        age = _heartbeat_age(run)
        if alive:
            raise InputError(f"run {run_id} is alive ({why}); it cannot be abandoned")
        if alive is None and not force:
            raise InputError(f"run {run_id} cannot be proven dead: {why}; pass --stack-name, or --force if "
                             "you know its driver is gone")
        if alive is None and age < stale_after:  # a driver proven gone needs no wait
            raise InputError(f"run {run_id} sent a heartbeat {age:.0f}s ago, under --stale-after "
                             f"{stale_after}s; wait, or check it is really dead ({why})")
        reason = f"abandoned: {why}, heartbeat {age:.0f}s old"
    else:
        ledger.require_abandonable(run)
        reason = run.abandon_reason_after_end()
    result = ledger.abandon_run(conn, run_id, reason)
    again = _rerun_command(run)
    if state.json:
        state.emit_json({"run_id": run_id, "status": "ABANDONED", "reason": reason,
                         "chunks_abandoned": result.tally("chunks_abandoned"), "next": [again]})
    else:
        state.print(f"run {run_id} ABANDONED ({reason}); "
                    f"{counted(result.tally('chunks_abandoned'), 'unfinished chunk')} marked FAILED",
                    f"to compute its window again: {again}")
    return 0


@command(cli, "logs", "print a run's log lines",
         epilog="""Examples:
  etl-pipeline logs --run-id 3
  etl-pipeline logs --run-id 3 --chunk 2 --json""")
@options(
    RUN_ID_OPTION,
    click.option("--chunk", "chunk_id", type=Whole(1, INT4_MAX),
                 help=describe("Only the lines of this chunk.", default="every line of the run")),
    STACK_NAME_OPTION,
)
def cmd_logs(state: State, conn: Connection, run_id: int, chunk_id: int | None,
             stack_name: str | None) -> int:
    """Print a run's log lines: a local run's from its JSON-lines files under .runs/logs, a run in AWS from
    CloudWatch Logs (the stack's function log groups), by the run's correlation id. --json prints them as
    JSON lines."""
    run = ledger.get_run(conn, run_id)
    if run.local:
        files = logs.local_files(runs_dir() / "logs", run)
        if not files:
            raise InputError(f"no log file of run {run_id} under {runs_dir() / 'logs'} (a run with --log-file "
                             "wrote its lines there)")
        records: Any = logs.read_local(files, chunk_id=chunk_id)
    else:
        stack = stack_name or os.environ.get(STACK_NAME_ENV)
        if not stack:
            raise ConfigError(f"run {run_id} ran in AWS: its logs are in CloudWatch; pass --stack-name or set "
                              f"{STACK_NAME_ENV}")
        records = logs.read_cloudwatch(logs.stack_log_groups(stack), logs.correlation_ids(run), chunk_id=chunk_id,
                                       since=run.created_at)
    shown = 0
    for record in records:
        shown += 1
        if state.json:
            write_plain(json.dumps(record) + "\n")
        else:
            state.out.print(views.log_line(record), soft_wrap=True)
    if not shown:
        state.say(f"no log lines of run {run_id}" + (f" chunk {chunk_id}" if chunk_id else ""))
    return 0


# --- following a run ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Target:
    """Where a run executes: here (the emulated cloud) or the deployed stack."""

    local: bool
    stack_name: str | None
    database_url: str
    log_file: Path | None
    max_concurrency: int | None

    def log_path(self, name: str) -> Path:
        return self.log_file or runs_dir() / "logs" / f"{name}.jsonl"

    def cloud(self, settings: Settings, name: str, *, logs_wanted: bool = True) -> Cloud:
        if not self.local:
            from chunking.aws import AwsCloud

            return AwsCloud(self.stack_name)
        from chunking.emulator import LocalCloud, LocalOptions

        options = LocalOptions(max_concurrency=self.max_concurrency or settings.max_concurrency,
                               max_receive_count=settings.max_receive_count,
                               worker_timeout_s=settings.worker_timeout_s,
                               retry_base_ms=min(settings.retry_base_ms, 1_000),
                               retry_max_ms=min(settings.retry_max_ms, 10_000),
                               retry_time_scale=settings.local_retry_scale)
        env = {k: v for k, v in os.environ.items() if k.startswith("ETL_")}
        return LocalCloud(self.database_url, options=options, state_dir=runs_dir() / "local", env=env,
                          log_path=self.log_path(name) if logs_wanted else None)


@dataclasses.dataclass
class Outcome:
    report: RunReport
    dead_letters_removed: int | None = None


def _follow(state: State, conn: Connection, settings: Settings, target: Target, name: str, payload: dict[str, Any],
            *, run_id: int | None, only: set[int] | None, dead_letters: bool = False) -> Outcome:
    progress = Progress(console=state.err, enabled=not state.quiet)
    command = "redrive" if dead_letters else "run"
    try:
        with target.cloud(settings, name) as cloud, progress:
            result = follow(cloud, conn, name=name, payload=payload, run_id=run_id, progress=progress,
                            only_chunks=only,
                            connect=lambda: db.connect(target.database_url, application_name=f"{PROG} {command}"))
            progress.close(result.chunks, only=only)
            if not dead_letters:
                return Outcome(result)
            done = {c.chunk_id for c in result.chunks if c.finished}
            removed = cloud.dead_letters(delete=lambda letter: _letter_chunk(letter, run_id) in done)
            cleared = sum(1 for letter in removed if _letter_chunk(letter, run_id) in done)
            state.say(f"dead-letter messages of redriven chunks removed: {cleared}")
            return Outcome(result, cleared)
    except RunStopped as stopped:
        raise Interrupted(_stopped_message(stopped), 128 + int(getattr(signal, stopped.signal_name,
                                                                        signal.SIGINT))) from None
    except KeyboardInterrupt:
        raise Interrupted(_interrupted_message(conn, name, run_id, target)) from None


class Interrupted(Exception):
    """A signal while following a run: what was left, and how to continue (``code``: 128 + the signal)."""

    def __init__(self, message: str, code: int = 130) -> None:
        super().__init__(message)
        self.code = code


def _stopped_message(stopped: RunStopped) -> str:
    if stopped.run_id is None:
        return f"{stopped}: the run had not begun, nothing to continue"
    return (f"run {stopped.run_id} STOPPED ({stopped}); continue it with: {PROG} redrive --run-id "
            f"{stopped.run_id}")


def _interrupted_message(conn: Connection, name: str, run_id: int | None, target: Target) -> str:
    try:
        run = ledger.find_run(conn, run_id) if run_id else ledger.find_run_by_execution(conn, name)
    except Exception:  # noqa: BLE001 - the database is the thing that went away: say what we can
        run = None
    if run is None:
        return f"interrupted before the run began; `{PROG} status` shows what ran"
    if not target.local:
        return (f"interrupted: run {run.run_id} goes on in AWS (execution {name}); follow it with "
                f"`{PROG} status --run-id {run.run_id}`")
    return (f"interrupted: run {run.run_id} is left {run.status} without its driver; continue with "
            f"`{PROG} abandon --run-id {run.run_id} --stale-after 0`, then `{_rerun_command(run)}`")


def _finish(state: State, outcome: Outcome, target: Target, *, show_metrics: bool) -> int:
    """The end of a run or redrive: one JSON line with --json; else a short summary, the chunks that did not
    succeed, the error once, and the next steps (how to continue, where the logs and the report are)."""
    result = outcome.report
    run = result.run
    extra: dict[str, Any] = {"execution_status": result.execution_status, "metrics": result.metrics}
    if outcome.dead_letters_removed is not None:
        extra["dead_letters_removed"] = outcome.dead_letters_removed
    if run is not None:
        extra["log_file"] = str(target.log_path(result.execution_name)) if target.local else None
        extra["next"] = _next_commands(run)
    if state.json:
        summary = views.run_json(run, result.chunks, **extra)
        if result.execution_status != "SUCCEEDED":
            summary["error"] = summary.get("error") or result.error
        state.emit_json(summary)
        return 0 if result.succeeded else 1
    if run is None:
        state.err.print(f"{state.command}: error: {result.error}")
        return 1
    shown = dataclasses.replace(run, error=run.error or (None if result.succeeded else result.error))
    state.print("", *views.run_summary(shown, result.chunks))
    unfinished = [c for c in result.chunks if not c.finished]
    if unfinished:
        state.print("", views.chunk_table(state.out, unfinished, errors=False, brief=True))
    if show_metrics and result.metrics:
        state.print("", "metrics (CloudWatch EMF, as the handlers emitted them):",
                    views.metrics_table(state.out, result.metrics))
    state.print("")
    if target.local:
        state.print(f"logs:    {target.log_path(result.execution_name)}  (`{PROG} logs --run-id {run.run_id}`)")
    else:
        state.print(f"logs:    `{PROG} logs --run-id {run.run_id}` (CloudWatch Logs, correlation id "
                    f"{result.execution_name})")
    for line in _next_steps(run, metrics_hint=bool(result.metrics) and not show_metrics, status_hint=True):
        state.print(line)
    return 0 if result.succeeded else 1


def _next_commands(run: Run) -> list[str]:
    rid = run.run_id
    steps = [f"{PROG} status --run-id {rid}", f"{PROG} report --run-id {rid}"]
    if run.redrivable:
        steps.insert(0, f"{PROG} redrive --run-id {rid}")
    elif run.status is RunStatus.ABANDONED:
        steps.insert(0, _rerun_command(run))
    return steps


def _next_steps(run: Run, *, metrics_hint: bool = False, status_hint: bool = False) -> list[str]:
    rid = run.run_id
    lines = []
    if run.redrivable:
        lines.append(f"continue: `{PROG} redrive --run-id {rid}` (to preview: add --dry-run)")
    elif run.status is RunStatus.ABANDONED:
        lines.append(f"again:   `{_rerun_command(run)}`")
    lines.append(f"report:  `{PROG} report --run-id {rid}`")
    if status_hint:
        lines.append(f"status:  `{PROG} status --run-id {rid}`" + ("  (metrics: add --metrics)" if metrics_hint
                                                                   else ""))
    return lines


def _rerun_command(run: Run) -> str:
    where = " --local" if run.local else ""
    return f"{PROG} run{where} --start {run.window_start} --end {run.window_end}"


def _require_deployed_database(state: State, command: str) -> None:
    if not (state.database_url or os.environ.get("DATABASE_URL")):
        raise ConfigError(f"{command} in AWS follows the run in the deployed database's ledger: give it with "
                          "--database-url or DATABASE_URL (or use --local to run on this machine)")


# --- helpers -----------------------------------------------------------------------------------------------------

def _letter_chunk(letter: dict[str, Any], run_id: int | None) -> int | None:
    body = letter.get("body") or {}
    return body.get("chunk_id") if body.get("run_id") == run_id else None


def _letters_by_chunk(letters: list[dict[str, Any]], run_id: int) -> dict[int, dict[str, Any]]:
    return {cid: letter for letter in letters if (cid := _letter_chunk(letter, run_id)) is not None}


def _print_redrive_plan(state: State, run: Run, pending: list[Chunk],
                        letters: dict[int, dict[str, Any]], target: Target) -> None:
    now = datetime.now(UTC)
    rows = []
    for c in pending:
        since = c.finished_at or c.queued_at
        age = (now - since).total_seconds() if since else None
        rows.append({"chunk_id": c.chunk_id, "chunk_start": c.chunk_start.isoformat(),
                     "chunk_end": c.chunk_end.isoformat(), "status": c.status.value, "attempts": c.attempts,
                     "last_error": c.last_error, "age_s": round(age) if age is not None else None,
                     "in_dead_letter_queue": c.chunk_id in letters})
    where = "local" if target.local else "aws"
    if state.json:
        state.emit_json({"run_id": run.run_id, "status": run.status.value, "where": where, "would_redrive": rows})
        return
    state.print(*views.redrive_plan(state.out, run, rows),
                f"redrive it ({'here' if target.local else 'in AWS'}): `{PROG} redrive --run-id {run.run_id}`")


def _heartbeat_age(run: Run) -> float:
    return (datetime.now(UTC) - run.heartbeat_at).total_seconds()


def _driver_alive(run: Run, stack_name: str | None = None) -> tuple[bool | None, str]:
    """Is whatever drives a RUNNING run still alive? (:func:`chunking.liveness.driver_alive`; for a run in AWS,
    its execution is asked of the stack's state machine.)"""

    def execution_status(execution: str) -> str:
        from chunking.aws import execution_status as status

        return status(execution, stack_name)

    return driver_alive(run, execution_status)


def _liveness_line(run: Run, stack_name: str | None = None) -> str:
    alive, why = _driver_alive(run, stack_name)
    return (f"liveness: {why}; last heartbeat {_heartbeat_age(run):.0f}s ago"
            + ("" if alive else f" — if it is dead: {PROG} abandon --run-id {run.run_id}"))


# --- the entry point ----------------------------------------------------------------------------------------------

def _option_name(param: click.Parameter | None) -> str:
    if param is None:
        return "value"
    opts: list[str] = list(getattr(param, "opts", None) or [param.name or "value"])
    return max(opts, key=len)


def _usage_message(exc: click.UsageError) -> str:
    if isinstance(exc, click.NoSuchOption):
        close = sorted(exc.possibilities or [])
        return f"no such option {exc.option_name}" + (f" (did you mean {' or '.join(close)}?)" if close else "")
    if isinstance(exc, click.MissingParameter):
        return f"missing option {_option_name(exc.param)}"
    if isinstance(exc, click.BadParameter):
        return f"argument {_option_name(exc.param)}: {exc.message}"
    return exc.message


def _flag_given(argv: Sequence[str], flag: str) -> bool:
    words = list(argv)
    return flag in (words[: words.index("--")] if "--" in words else words)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``etl-pipeline ARGV`` and return its exit code (errors are one line, or JSON with --json)."""
    args = list(sys.argv[1:] if argv is None else argv)
    state = State(json=_flag_given(args, "--json"), quiet=_flag_given(args, "--quiet") or _flag_given(args, "-q"),
                  debug=_flag_given(args, "--debug"))
    try:
        try:
            code = cli.main(args, prog_name=PROG, standalone_mode=False, obj=state)
        except click.exceptions.Exit as exit_:  # --help, --version, a bare call (click 8.2 raises them)
            code = exit_.exit_code
        return int(code or 0)
    except click.UsageError as exc:
        prefix = exc.ctx.command_path if exc.ctx else PROG
        return _error(state, prefix, _usage_message(exc) + _help_hint(exc), 2)
    except RunAlreadyActive as exc:
        return _error(state, state.command, str(exc), 1)
    except EtlError as exc:
        return _error(state, state.command, str(exc), 2)
    except PipeClosed:
        return _quiet_pipe()
    except BrokenPipeError:
        return _quiet_pipe()
    except (Interrupted, click.Abort, KeyboardInterrupt) as exc:
        why = str(exc) if isinstance(exc, Interrupted) else f"interrupted; `{PROG} status` shows what ran"
        return _error(state, state.command, why, exc.code if isinstance(exc, Interrupted) else 130)


def _help_hint(exc: click.UsageError) -> str:
    if isinstance(exc, click.BadParameter | click.NoSuchOption):
        return ""
    return f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""


def _error(state: State, prefix: str, message: str, code: int) -> int:
    try:
        if state.debug:
            state.err.print(traceback.format_exc().rstrip())
        if state.json:
            write_plain(json.dumps({"error": message, "exit_code": code}) + "\n")
        else:
            state.err.print(Text(f"{prefix}: error: {message}"), soft_wrap=True)
    except PipeClosed:
        return _quiet_pipe()
    return code


def _quiet_pipe() -> int:
    """The reader went away: send what is left of stdout nowhere, and end as a shell's SIGPIPE would."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (a test capture)
        pass
    return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
