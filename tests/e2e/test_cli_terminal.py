"""The CLI as a person sees it: a real local run in a pseudo-terminal 80 columns wide (progress redrawn in place,
never wider than the terminal, ending on the final state), a failed run that says once what went wrong and how
to continue, and output piped into ``head -1`` that ends quietly."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shlex
import struct
import subprocess
import sys
import termios
import time
from datetime import date

import pytest

from chunking import ledger, seed

pytestmark = pytest.mark.e2e

START, END = "2026-10-01", "2026-10-06"
TWO_DAY_CHUNKS = ("--chunk-days", "2", "--max-chunk-rows", "1000000")
CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


class Screen:
    """Just enough of a terminal to replay what the CLI wrote: text, CR, LF, erase line, cursor up; it records
    whether any line ever ran past the right margin (the terminal would have wrapped it)."""

    def __init__(self, columns: int) -> None:
        self.columns = columns
        self.rows: list[list[str]] = [[]]
        self.row = self.col = 0
        self.overflowed: list[str] = []
        self.redraws = 0

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            match = CSI.match(text, i)
            if match:
                self._control(match.group(1), match.group(2))
                i = match.end()
                continue
            ch = text[i]
            i += 1
            if ch == "\r":
                self.col = 0
            elif ch == "\n":
                self.row += 1
                while len(self.rows) <= self.row:
                    self.rows.append([])
            elif ch >= " ":
                line = self.rows[self.row]
                if self.col >= self.columns:
                    self.overflowed.append("".join(line))
                while len(line) <= self.col:
                    line.append(" ")
                line[self.col] = ch
                self.col += 1

    def _control(self, args: str, code: str) -> None:
        if code == "K":  # erase (the whole line for 2)
            self.rows[self.row] = [] if args == "2" else self.rows[self.row][: self.col]
            self.redraws += 1
        elif code == "A":
            self.row = max(0, self.row - int(args or 1))
        elif code == "G":
            self.col = int(args or 1) - 1

    @property
    def lines(self) -> list[str]:
        return ["".join(r).rstrip() for r in self.rows]


def _read_all(fd: int, process: subprocess.Popen, timeout: float) -> bytes:
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    return b"".join(chunks)


def _environment(database_url: str, tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR",
                                                             "ETL_FAULT_CHUNKS")}
    return {**env, "TERM": "xterm-256color", "ETL_RUNS_DIR": str(tmp_path / "runs"), "DATABASE_URL": database_url}


def test_progress_in_an_80_column_terminal_redraws_in_place_and_ends_on_the_final_state(conn, database_url,
                                                                                       tmp_path):
    # given a seeded week
    seed.seed_visits(conn, visits=3_000, start=date(2026, 10, 1), days=7, seed=41)
    # when a local run's progress (stderr) goes to a pseudo-terminal 80 columns wide
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "chunking.cli", "run", "--local", "--start", START, "--end",
                                END, *TWO_DAY_CHUNKS, "--max-concurrency", "1"],
                               stdin=terminal, stdout=subprocess.PIPE, stderr=terminal,
                               env=_environment(database_url, tmp_path))
    os.close(terminal)
    try:
        raw = _read_all(controller, process, timeout=120)
        out = process.communicate(timeout=60)[0].decode()
    finally:
        os.close(controller)
    text = raw.decode("utf-8", errors="replace")
    screen = Screen(80)
    screen.feed(text)
    assert process.returncode == 0, text + out
    # then the line was redrawn in place (carriage returns and line erases), several times
    assert screen.redraws >= 3 and "\r" in text, repr(text[:2000])
    # no line ran past the 80th column (the terminal would have wrapped it)
    assert screen.overflowed == [], screen.overflowed
    # colour for states on a terminal
    assert re.search(r"\x1b\[[0-9;]*32m", text), "no green on a terminal"
    # and the final screen shows the final state: every chunk done, then the count line
    lines = [line for line in screen.lines if line]
    assert re.search(r"\] 3/3 chunks\s+\d", lines[-2]), lines[-3:]
    assert "running" not in lines[-2] and "retrying" not in lines[-2]
    assert re.fullmatch(r"Finished: 3 OK, 0 FAILED of 3 chunks in \S+( \S+)?", lines[-1]), lines[-1]
    # the results went to stdout, with where the log and the report are
    run_id = ledger.list_runs(conn, 1)[0]["run_id"]
    conn.rollback()
    assert "SUCCEEDED" in out and f"`etl-pipeline report --run-id {run_id}`" in out
    assert re.search(rf"logs:\s+{re.escape(str(tmp_path / 'runs' / 'logs'))}/cli-{START}-{END}-\S+\.jsonl", out)


def test_a_failed_run_says_its_error_once_and_how_to_continue_and_the_redrive_finds_it_local(conn, etl, monkeypatch,
                                                                                            tmp_path):
    seed.seed_visits(conn, visits=2_400, start=date(2026, 10, 1), days=7, seed=31)
    for name, value in {"ETL_MAX_RECEIVE_COUNT": "2", "ETL_RETRY_BASE_MS": "50", "ETL_RETRY_MAX_MS": "100",
                        "ETL_FAULT_CHUNKS": "2026-10-03"}.items():
        monkeypatch.setenv(name, value)
    failed = etl("run", "--local", "--start", START, "--end", END, *TWO_DAY_CHUNKS)
    assert failed.code == 1
    run_id = ledger.list_runs(conn, 1)[0]["run_id"]
    run = ledger.get_run(conn, run_id)
    conn.rollback()
    # one line per finished chunk and a count line, off a terminal
    progress = [line for line in failed.err.splitlines() if re.match(r"\d of 3 ", line)]
    assert sorted(re.sub(r" in \S+ \S+$", "", line.split(" ", 3)[3]) for line in progress) == [
        "FAILED chunk 2 2026-10-03..2026-10-04 after 2 attempts", "OK chunk 1 2026-10-01..2026-10-02",
        "OK chunk 3 2026-10-05..2026-10-06"]
    assert "Finished: 2 OK, 1 FAILED of 3 chunks in " in failed.err
    # the error once, then how to continue and where the logs and report are
    assert (failed.out + failed.err).count("fails every attempt") == 1, failed.out + failed.err
    assert f"continue: `etl-pipeline redrive --run-id {run_id}`" in failed.out
    assert f"report:  `etl-pipeline report --run-id {run_id}`" in failed.out
    log = tmp_path / "runs" / "logs" / f"{run['execution_name']}.jsonl"
    assert f"logs:    {log}" in failed.out and log.is_file()
    assert "metrics (CloudWatch EMF" not in failed.out
    # the redrive finds the run local without --local, and a success ends with where to look next
    monkeypatch.delenv("ETL_FAULT_CHUNKS")
    dry = etl("redrive", "--run-id", str(run_id), "--dry-run")
    assert dry.code == 0 and f"redrive it (here): `etl-pipeline redrive --run-id {run_id}`" in dry.out
    redriven = etl("redrive", "--run-id", str(run_id), "--metrics")
    assert redriven.code == 0, redriven.err
    assert "SUCCEEDED" in redriven.out and "continue:" not in redriven.out
    assert f"`etl-pipeline status --run-id {run_id}`" in redriven.out
    assert "metrics (CloudWatch EMF" in redriven.out and "ChunkDurationMs" in redriven.out
    assert "Finished: 1 OK, 0 FAILED of 1 chunk in " in redriven.err
    # and logs reads both executions' files
    logged = etl("logs", "--run-id", str(run_id), "--chunk", "2", "--json")
    messages = [json.loads(line)["message"] for line in logged.out.splitlines()]
    assert messages.count("chunk attempt failed, will retry") >= 1 and "chunk done" in messages


@pytest.mark.parametrize("json_output", [False, True])
def test_output_piped_into_head_ends_quietly(conn, database_url, tmp_path, json_output):
    run = ledger.begin_run(conn, execution_name="cli-pipe", trigger="cli", executor="local:elsewhere:1",
                           window_start=date(2026, 10, 1), window_end=date(2026, 10, 1), chunk_days=1,
                           max_chunk_rows=1, max_concurrency=1)
    conn.commit()
    logs = tmp_path / "runs" / "logs"
    logs.mkdir(parents=True)
    line = {"level": "INFO", "message": "x" * 200, "timestamp": "2026-10-07 12:00:00,000+0000",
            "correlation_id": "cli-pipe", "run_id": run["run_id"]}
    (logs / "cli-pipe.jsonl").write_text((json.dumps(line) + "\n") * 5_000)  # over 1 MB: more than a pipe holds
    command = [sys.executable, "-m", "chunking.cli", "logs", "--run-id", str(run["run_id"]),
               *(["--json"] if json_output else [])]
    done = subprocess.run(["bash", "-c", f"{shlex.join(command)} | head -1; exit ${{PIPESTATUS[0]}}"],
                          capture_output=True, text=True, env=_environment(database_url, tmp_path), timeout=120)
    assert done.returncode in (0, 141), done.stderr
    assert done.stderr == "", done.stderr
    assert len(done.stdout.splitlines()) == 1 and "xxxx" in done.stdout
