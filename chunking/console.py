"""Terminal output through rich: one duration format, cells with their time zone, tables that fit the width,
and chunk progress (a display redrawn in place on a terminal, one line per finished chunk elsewhere).

Colour only on a terminal and never with ``NO_COLOR`` (rich decides both)."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from chunking.wording import counted

STATE_STYLES = {"SUCCEEDED": "green", "OK": "green", "FAILED": "bold red", "RUNNING": "cyan",
                "RETRYING": "yellow", "PENDING": "dim", "ABANDONED": "magenta", "STOPPED": "yellow",
                "SUPERSEDED": "dim", "REJECTED": "bold red"}


class PipeClosed(Exception):
    """Whoever read our output went away (``| head -1``): end quietly."""


class EtlConsole(Console):
    """A rich console whose closed pipe ends the command quietly (rich's own answer is ``SystemExit(1)``,
    which would read as "the run failed")."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise PipeClosed()


def make_console(*, stderr: bool = False, force_terminal: bool | None = None, width: int | None = None) -> Console:
    """A console on stdout (or stderr), its stream looked up at each write so test captures work. No markup or
    highlighting: text is shown as it is; soft wrap: plain lines are never broken (tables still fit)."""
    return EtlConsole(stderr=stderr, markup=False, highlight=False, emoji=False, soft_wrap=True,
                      force_terminal=force_terminal, width=width)


# --- values ----------------------------------------------------------------------------------------------------

def duration(seconds: float | None) -> str:
    """The one duration format: ``35 ms``, ``1.2 s``, ``2m05s``, ``1h02m``."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def timestamp(value: datetime) -> str:
    """A time with its zone, in UTC (what the ledger stores)."""
    if value.tzinfo is None:
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return duration(value.total_seconds())
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def state(status: str | None) -> Text:
    """A state, coloured by what it means (colour shows only on a terminal)."""
    return Text(status or "-", style=STATE_STYLES.get(status or "", ""))


# --- tables ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    """A table column. ``drop``: the order columns go in when the terminal is too narrow (1 first; 0 never)."""

    header: str
    numeric: bool = False
    drop: int = 0
    max_width: int | None = None
    flex: bool = False  # long text may be narrowed: wrapped when ``wrap``, else cut with an ellipsis
    wrap: bool = False


def fitted_table(console: Console, columns: Sequence[Column], rows: Iterable[Sequence[Any]],
                 *, width: int | None = None, title: str | None = None) -> Table:
    """A table no wider than the console: columns shrink and wrap, and when even that is too wide the
    least needed ones are dropped (``Column.drop``)."""
    rows = [[v if isinstance(v, Text) else Text(cell(v)) for v in r] for r in rows]
    width = width or console.width
    need = [_need(c, [r[i] for r in rows]) for i, c in enumerate(columns)]
    keep = list(range(len(columns)))
    while sum(need[i] for i in keep) + 2 * (len(keep) - 1) > width:
        droppable = [i for i in keep if columns[i].drop]
        if not droppable:
            break
        keep.remove(min(droppable, key=lambda i: columns[i].drop))
    # what is left over goes to the flexible columns, up to their widest value
    widths = {i: need[i] for i in keep}
    spare = width - sum(widths.values()) - 2 * (len(keep) - 1)
    for i in keep:
        if spare > 0 and (columns[i].flex or columns[i].wrap):
            widest = _need(dataclasses.replace(columns[i], flex=False, wrap=False), [r[i] for r in rows])
            extra = min(spare, max(0, widest - widths[i]))
            widths[i] += extra
            spare -= extra
    return _table([columns[i] for i in keep], [[r[i] for i in keep] for r in rows], title,
                  [widths[i] for i in keep])


def _need(column: Column, values: Sequence[Text]) -> int:
    """The width a column needs: all of its longest value, or for wrapping text a readable 24 columns."""
    widest = max([len(column.header), *(v.cell_len for v in values)])
    if column.max_width:
        widest = min(widest, column.max_width)
    return min(widest, max(len(column.header), 24)) if column.flex or column.wrap else widest


def _table(columns: Sequence[Column], rows: Sequence[Sequence[Any]], title: str | None,
           widths: Sequence[int]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), title=title,
                  title_justify="left", header_style="bold")
    for c, width in zip(columns, widths, strict=True):
        table.add_column(c.header, justify="right" if c.numeric else "left", width=width,
                         overflow="fold" if c.wrap else "ellipsis", no_wrap=not c.wrap)
    for row in rows:
        table.add_row(*(v if isinstance(v, Text) else Text(cell(v)) for v in row))
    return table


def plain_table(columns: Sequence[Column], rows: Iterable[Sequence[Any]]) -> Table:
    """A borderless table (two spaces between columns) for short fixed listings such as costs."""
    table = Table(box=None, show_header=True, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    for c in columns:
        table.add_column(c.header, justify="right" if c.numeric else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(v if isinstance(v, Text) else Text(cell(v)) for v in row))
    return table


# --- progress --------------------------------------------------------------------------------------------------

@dataclass
class _Counts:
    done: int = 0
    total: int = 0
    running: int = 0
    failed: int = 0
    retrying: int = 0
    phase: str = "starting"


@dataclass
class Progress:
    """Chunk progress of one execution, on stderr.

    On a terminal: one line redrawn in place (rich ``Live``), never wider than the terminal, with failed chunks
    printed above it as they fail. Elsewhere: one line per finished chunk (``3 of 12 OK chunk 3
    2026-10-07..2026-10-09 in 520 ms``). :meth:`close` draws the final state and the count line; the runner's
    :meth:`finish` only marks that polling ended (its last poll may predate the end)."""

    console: Console = field(default_factory=lambda: make_console(stderr=True))
    noun: str = "chunk"  # what it counts, singular
    enabled: bool = True
    started: float = field(default_factory=time.monotonic)
    counts: _Counts = field(default_factory=_Counts)
    _reported: dict[int, str] = field(default_factory=dict)
    _live: Live | None = None
    _last_phase: str = ""

    @property
    def tty(self) -> bool:
        return self.console.is_terminal

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def update(self, done: int, total: int, running: int, failed: int, retrying: int = 0, phase: str = "",
               chunks: Sequence[Mapping[str, Any]] | None = None) -> None:
        """A poll of the ledger: the counts, and (when given) the chunks themselves."""
        self.counts = _Counts(done, total, running, failed, retrying, phase)
        if not self.enabled:
            return
        if chunks is not None:
            self._chunk_lines(chunks, total)
        if self.tty:
            self._frame()
        elif not total and phase and phase != self._last_phase:
            self.console.print(f"{phase}…")
        self._last_phase = phase

    def finish(self) -> None:
        """Polling ended; :meth:`close` shows the final state."""

    def close(self, chunks: Sequence[Mapping[str, Any]], *, only: set[int] | None = None) -> None:
        """The execution ended: lines for what finished since the last poll, the final frame, the count line."""
        live = [c for c in chunks if c["status"] != "SUPERSEDED" and (only is None or c["chunk_id"] in only)]
        states = [c["status"] for c in live]
        self.counts = _Counts(states.count("SUCCEEDED"), len(states), states.count("RUNNING"),
                              states.count("FAILED"), states.count("RETRYING"), "")
        if not self.enabled:
            return
        self._chunk_lines(live, len(live))
        if self.tty:
            self._frame()
        self._stop()
        self.console.print(self.count_line(live))

    def count_line(self, chunks: Sequence[Mapping[str, Any]]) -> Text:
        states = [c["status"] for c in chunks]
        ok, failed = states.count("SUCCEEDED"), states.count("FAILED")
        other = len(states) - ok - failed
        line = Text("Finished: ")
        line.append(f"{ok} OK", style=STATE_STYLES["OK"] if ok else "")
        line.append(", ")
        line.append(f"{failed} FAILED", style=STATE_STYLES["FAILED"] if failed else "")
        if other:
            line.append(f", {other} unfinished", style=STATE_STYLES["RETRYING"])
        line.append(f" of {counted(len(states), self.noun)} in {duration(time.monotonic() - self.started)}")
        return line

    def _chunk_lines(self, chunks: Sequence[Mapping[str, Any]], total: int) -> None:
        for c in chunks:
            status = c.get("status")
            if status not in ("SUCCEEDED", "FAILED") or self._reported.get(c["chunk_id"]) == status:
                continue
            self._reported[c["chunk_id"]] = status
            if self.tty and status == "SUCCEEDED":
                continue  # the redrawn line counts them; a terminal shows failures only
            line = self.chunk_line(c, len(self._reported), total)
            if self.tty:
                line.truncate(max(1, self.console.width - 1), overflow="ellipsis")
            self.console.print(line)

    @staticmethod
    def chunk_line(c: Mapping[str, Any], index: int, total: int) -> Text:
        ok = c["status"] == "SUCCEEDED"
        line = Text(f"{index} of {total} ")
        line.append("OK" if ok else "FAILED", style=STATE_STYLES["OK" if ok else "FAILED"])
        line.append(f" chunk {c['chunk_id']} {cell(c.get('chunk_start'))}..{cell(c.get('chunk_end'))}")
        if ok:
            ms = c.get("duration_ms")
            line.append(f" in {duration(ms / 1000)}" if ms is not None else "")
        else:  # its error is told once, at the end
            attempts = c.get("attempts") or 0
            line.append(f" after {counted(attempts, 'attempt')}")
        return line

    def frame(self, width: int) -> Text:
        """The redrawn line, at most ``width - 1`` columns (the last column would wrap on some terminals)."""
        n = self.counts
        elapsed = duration(time.monotonic() - self.started)
        if not n.total:
            text = Text(f"{n.phase or 'running'}…  {elapsed}")
        else:
            tail = Text(f" {n.done}/{counted(n.total, self.noun)}")
            for count, name in ((n.running, "RUNNING"), (n.retrying, "RETRYING"), (n.failed, "FAILED")):
                if count:
                    tail.append(f"  {count} ")
                    tail.append(name.lower(), style=STATE_STYLES[name])
            tail.append(f"  {elapsed}")
            bar_width = max(0, min(30, width - 1 - len(tail) - 2))
            filled = bar_width * n.done // n.total
            text = Text()
            if bar_width >= 5:
                text.append("[")
                text.append("#" * filled, style=STATE_STYLES["FAILED"] if n.failed else STATE_STYLES["OK"])
                text.append("." * (bar_width - filled))
                text.append("]")
            text.append_text(tail)
        text.truncate(max(1, width - 1), overflow="ellipsis")
        text.no_wrap = True
        return text

    def _frame(self) -> None:
        if self._live is None:
            self._live = Live(console=self.console, auto_refresh=False, transient=False, redirect_stdout=False,
                              redirect_stderr=False, get_renderable=lambda: self.frame(self.console.width))
            self._live.start()
        self._live.refresh()

    def _stop(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()


def write_plain(text: str) -> None:
    """Write to stdout without rich (raw log lines, JSON)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise PipeClosed() from None

