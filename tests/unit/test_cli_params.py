"""The command line's conventions, without a database: version, usage, help with defaults and variables,
suggestions, no abbreviations, global options in both places, range checks at parse time, JSON errors; and the
output pieces (one duration format, tables that fit, progress lines, colour only on a terminal)."""

from __future__ import annotations

import json
import re
from datetime import date
from importlib.metadata import version

import click
import pytest
from rich.console import Console

from chunking import cli
from chunking.console import Column, Progress, duration, fitted_table, make_console, state
from chunking.errors import ConfigError
from chunking.settings import Settings

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none"


def _run(capsys, *args):
    capsys.readouterr()
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _commands(group: click.Group, path=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


ALL_COMMANDS = list(_commands(cli.cli))
SETTING_OPTIONS = {"--chunk-days": ("ETL_CHUNK_DAYS", Settings().chunk_days),
                   "--max-concurrency": ("ETL_MAX_CONCURRENCY", Settings().max_concurrency),
                   "--max-chunk-rows": ("ETL_MAX_CHUNK_ROWS", "adaptive"),
                   "--database-url": ("DATABASE_URL", "an embedded PostgreSQL"),
                   "--stack-name": ("ETL_STACK_NAME", "none")}


def test_version_names_the_installed_package(capsys):
    code, out, _ = _run(capsys, "--version")
    assert code == 0 and out.strip() == f"etl-pipeline {version('conflict-map-etl')}"


def test_bare_call_prints_usage_and_every_command(capsys):
    code, out, err = _run(capsys)
    assert code == 2 and out == ""
    assert err.startswith("Usage: etl-pipeline [OPTIONS] COMMAND")
    for path, _ in ALL_COMMANDS:
        assert f"  {path[0]} " in err


@pytest.mark.parametrize(("args", "says"), [
    (["statsu"], "invalid choice: 'statsu' (choose from db, seed, plan, run, freshness, status, report, redrive, "
                 "abandon, logs); did you mean 'status'?"),
    (["redriv", "--run-id", "1"], "did you mean 'redrive'?"),
    (["run", "--local", "--chunks-days", "3"], "no such option --chunks-days (did you mean --chunk-days"),
    (["status", "--limt", "3"], "no such option --limt (did you mean --limit"),
])
def test_mistyped_commands_and_options_get_suggestions_in_one_line(capsys, args, says):
    code, _, err = _run(capsys, *args)
    assert code == 2 and says in err, err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["status", "--run", "3"], ["redrive", "--run", "3"], ["run", "--loc"],
                                  ["seed", "--visit", "10", "--start", "2026-10-01", "--days", "1"],
                                  ["--data", UNREACHABLE, "status"]])
def test_abbreviated_options_are_refused_not_guessed(capsys, args):
    code, _, err = _run(capsys, *args)
    assert code == 2 and "no such option" in err, err


@pytest.mark.parametrize("where", ["before", "after"])
def test_database_url_is_used_before_the_command_and_after_it(capsys, where):
    args = ["--database-url", UNREACHABLE, "status"] if where == "before" else ["status", "--database-url",
                                                                                UNREACHABLE]
    code, _, err = _run(capsys, *args)
    assert code == 2 and "cannot connect to the database" in err


@pytest.mark.parametrize("args", [["--json", "status", "--database-url", UNREACHABLE],
                                  ["status", "--json", "--database-url", UNREACHABLE],
                                  ["--json", "status", "--limit", "0"], ["status", "--limit", "0", "--json"],
                                  ["--json", "frobnicate"], ["db", "init", "--json", "--database-url", UNREACHABLE],
                                  ["seed", "--json", "--visits", "0", "--start", "2026-10-01", "--days", "1"],
                                  ["report", "--json"], ["abandon", "--json", "--run-id", "x"],
                                  ["logs", "--json", "--run-id", "0"]])
def test_errors_are_json_on_stdout_with_json_in_either_place(capsys, args):
    code, out, err = _run(capsys, *args)
    assert code == 2 and err == ""
    assert json.loads(out) == {"error": json.loads(out)["error"], "exit_code": 2}
    assert json.loads(out)["error"]


@pytest.mark.parametrize(("args", "says"), [
    (["--max-concurrency", "0"], "argument --max-concurrency: must be at least 1, got 0"),
    (["--max-concurrency", "41"], "argument --max-concurrency: must be at most 40, got 41"),
    (["--chunk-days", "0"], "argument --chunk-days: must be at least 1, got 0"),
    (["--chunk-days", "367"], "argument --chunk-days: must be at most 366, got 367"),
    (["--max-chunk-rows", "0"], "argument --max-chunk-rows: must be at least 1, got 0"),
    (["--max-chunk-rows", str(2**31)], "argument --max-chunk-rows: must be at most 2,147,483,647"),
    (["--max-chunk-rows", "many"], "argument --max-chunk-rows: must be a whole number, got 'many'"),
    (["--log-file", "/tmp"], "argument --log-file:"),
    (["--start", "2026-02-30", "--end", "2026-03-01"], "argument --start: date is not a valid date"),
])
def test_numeric_and_path_flags_of_run_are_checked_at_parse_time(capsys, args, says):
    code, _, err = _run(capsys, "run", "--local", *args, "--database-url", UNREACHABLE)
    assert code == 2 and says in err, err  # refused before connecting: the URL is unreachable
    assert "cannot connect" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("args", "says"), [
    (["status", "--limit", "0"], "argument --limit: must be at least 1, got 0"),
    (["status", "--limit", "10001"], "argument --limit: must be at most 10,000, got 10001"),
    (["status", "--state", "LOST"], "argument --state:"),
    (["status", "--since", "yesterday"], "argument --since: date must be an ISO date"),
    (["status", "--run-id", "0"], "argument --run-id: must be at least 1, got 0"),
    (["abandon", "--run-id", "3", "--stale-after", "-1"], "argument --stale-after: must be at least 0, got -1"),
    (["redrive", "--run-id", "3", "--chunk-id", "0"], "argument --chunk-id: must be at least 1, got 0"),
    (["plan", "--start", "2026-10-01"], "missing option --end"),
    (["seed", "--visits", "10", "--start", "2026-10-01", "--days", "1", "--replace", "--append"],
     "--replace and --append exclude each other"),
])
def test_other_commands_check_their_flags_before_touching_the_database(capsys, args, says):
    code, _, err = _run(capsys, *args, "--database-url", UNREACHABLE)
    assert code == 2 and says in err, err
    assert "cannot connect" not in err


def test_the_concurrency_bound_is_the_one_settings_enforce():
    low, high = cli.MAX_CONCURRENCY_BOUNDS
    assert Settings.from_env({"ETL_MAX_CONCURRENCY": str(high)}).max_concurrency == high
    for outside in (low - 1, high + 1):
        with pytest.raises(ConfigError):
            Settings.from_env({"ETL_MAX_CONCURRENCY": str(outside)})


@pytest.mark.parametrize(("path", "command"), ALL_COMMANDS, ids=[" ".join(p) for p, _ in ALL_COMMANDS])
def test_every_command_has_a_description_an_example_and_help_on_every_option(capsys, path, command):
    code, out, _ = _run(capsys, *path, "--help")
    assert code == 0
    text = " ".join(out.split())  # click wraps lines
    assert command.help and command.short_help
    assert re.search(r"Examples?: etl-pipeline " + re.escape(" ".join(path)), text), text
    for param in command.params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        name = max(param.opts, key=len)
        assert param.help, f"{name} has no help"
        if param.is_flag:
            continue  # off unless given
        facts = re.search(re.escape(name) + r" [^\[]*?\[([^\]]*)\]", text)
        assert facts, f"{name}: no [default ...] in the help"
        assert "required" in facts.group(1) or "default: " in facts.group(1), (name, facts.group(1))
        if name in SETTING_OPTIONS:
            env, default = SETTING_OPTIONS[name]
            assert f"env var: {env}" in facts.group(1) and f"default: {default}" in facts.group(1), facts.group(1)


def test_run_help_says_what_omitting_local_and_the_dates_does(capsys):
    _, out, _ = _run(capsys, "run", "--help")
    text = " ".join(out.split())
    assert "Without --local the run targets AWS" in text
    assert f"the last ETL_DEFAULT_WINDOW_DAYS days (default {Settings().default_window_days}) up to yesterday" in text


def test_global_options_are_in_every_commands_help(capsys):
    for path, _ in ALL_COMMANDS:
        _, out, _ = _run(capsys, *path, "--help")
        for option in ("--database-url", "--json", "--quiet", "--debug"):
            assert option in out, (path, option)


def test_debug_adds_the_traceback_to_the_one_line(capsys):
    code, _, err = _run(capsys, "--debug", "status", "--database-url", UNREACHABLE)
    assert code == 2 and "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith("etl-pipeline status: error: cannot connect")


# --- output pieces ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "shown"), [(0.035, "35 ms"), (0.0004, "0 ms"), (0.52, "520 ms"), (1.24, "1.2 s"),
                                                (59.94, "59.9 s"), (125, "2m05s"), (3725, "1h02m"), (None, "-")])
def test_one_duration_format(seconds, shown):
    assert duration(seconds) == shown


@pytest.mark.parametrize("width", [40, 80, 120, 200])
def test_tables_fit_the_width_dropping_the_least_needed_columns(width):
    console = Console(width=width, file=open("/dev/null", "w"), color_system=None)  # noqa: SIM115
    columns = [Column("chunk", numeric=True), Column("range"), Column("status"),
               Column("visits", numeric=True, drop=2), Column("inserted", numeric=True, drop=1),
               Column("last error", flex=True, drop=3, max_width=80)]
    rows = [[i, "2026-10-01..2026-10-02", state("FAILED"), 12_345, 678, "connection lost " * 20] for i in range(3)]
    with console.capture() as captured:
        console.print(fitted_table(console, columns, rows))
    lines = captured.get().splitlines()
    assert lines and max(len(line) for line in lines) <= width
    assert lines[0].split()[:3] == ["chunk", "range", "status"]  # the needed columns stay
    assert ("last error" in lines[0]) == (width >= 80)


def _chunk(cid, status, **kw):
    return {"chunk_id": cid, "chunk_start": date(2026, 10, cid), "chunk_end": date(2026, 10, cid),
            "status": status, "attempts": kw.get("attempts", 1), "duration_ms": kw.get("ms"),
            "last_error": kw.get("error")}


def test_progress_off_a_terminal_prints_one_line_per_finished_chunk_and_a_count_line():
    console = make_console(stderr=False, force_terminal=False, width=80)
    progress = Progress(console=console)
    with console.capture() as captured:
        progress.update(0, 0, 0, 0, phase="staging and planning")
        progress.update(1, 3, 2, 0, chunks=[_chunk(1, "SUCCEEDED", ms=35), _chunk(2, "RUNNING"), _chunk(3, "RUNNING")])
        progress.update(1, 3, 2, 0, chunks=[_chunk(1, "SUCCEEDED", ms=35), _chunk(2, "RUNNING"), _chunk(3, "RUNNING")])
        progress.finish()
        progress.close([_chunk(1, "SUCCEEDED", ms=35), _chunk(2, "FAILED", attempts=3, error="boom"),
                        _chunk(3, "SUCCEEDED", ms=520)])
    lines = captured.get().splitlines()
    assert lines[:4] == ["staging and planning…", "1 of 3 OK chunk 1 2026-10-01..2026-10-01 in 35 ms",
                         "2 of 3 FAILED chunk 2 2026-10-02..2026-10-02 after 3 attempts",
                         "3 of 3 OK chunk 3 2026-10-03..2026-10-03 in 520 ms"]
    assert re.fullmatch(r"Finished: 2 OK, 1 FAILED of 3 chunks in \d+ ms", lines[4]) and len(lines) == 5
    assert "\x1b[" not in captured.get() and "boom" not in captured.get()  # no colour; the error is told once


@pytest.mark.parametrize("width", [20, 40, 80, 200])
def test_the_redrawn_progress_line_never_fills_the_terminal(width):
    progress = Progress(console=make_console(width=width))
    progress.update(7, 12, 3, 1, 1)
    assert progress.frame(width).cell_len <= width - 1
    assert "7/12" in progress.frame(width).plain or width < 30


def test_states_are_coloured_on_a_terminal_and_not_with_no_color(monkeypatch):
    def shown() -> str:
        console = make_console(force_terminal=True, width=80)
        with console.capture() as captured:
            console.print(state("FAILED"))
        return captured.get()

    red = re.compile(r"\x1b\[[0-9;]*\b31m")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert red.search(shown())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not red.search(shown())
