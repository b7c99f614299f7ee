"""How runs and chunks are shown: rich tables and lines for people (fitted to the console), JSON for programs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, RenderableType
from rich.text import Text

from chunking.console import Column, cell, duration, fitted_table, plain_table, state
from chunking.ledger import COUNT_FIELDS, Attempt, Chunk, Run
from chunking.planner import MAX_HISTORY_EVENTS, MAX_PAYLOAD_BYTES, STATE_OVERHEAD_BYTES
from chunking.preview import FUNCTION_MEMORY_GB, PRICES, Preview
from chunking.wording import counted

COUNTS = COUNT_FIELDS
PROG = "etl-pipeline"


def run_json(run: Run | None, chunks: list[Chunk], **extra: Any) -> dict[str, Any]:
    """The machine-readable summary of a run (``--json``)."""
    if run is None:
        return {"run_id": None, "status": "REJECTED", "chunks": 0, **dict.fromkeys(COUNTS, 0),
                "rejected": 0, **extra}
    live = [c for c in chunks if c.live]
    out: dict[str, Any] = {
        "run_id": run.run_id, "status": run.status.value, "window_start": cell(run.window_start),
        "window_end": cell(run.window_end), "execution": run.execution_name, "chunks": len(live),
        "chunks_succeeded": sum(c.succeeded for c in live),
        "visits": run.count("visits"),
        "days": sum(len(c.computed_days()) for c in live if c.succeeded),
        **{k: run.count(k) for k in COUNTS},
        "rejected": int(run.rejected_rows or 0),
        "staged_rows": int(run.staged_rows or 0),
        "duration_s": seconds_between(run.created_at, run.finished_at),
        "failed_chunks": [{"chunk_id": c.chunk_id, "chunk_start": cell(c.chunk_start),
                           "chunk_end": cell(c.chunk_end), "status": c.status.value, "attempts": c.attempts,
                           "error": c.last_error} for c in live if not c.succeeded],
        "error": run.error,
    }
    out.update(extra)
    return out


def seconds_between(start: Any, end: Any) -> float | None:
    if isinstance(start, datetime):
        end = end if isinstance(end, datetime) else datetime.now(UTC)
        return round(float((end - start).total_seconds()), 3)
    return None


def json_ready(value: Any) -> Any:
    """Ledger models as their rows; dates and datetimes as ISO strings, recursively."""
    if isinstance(value, Run | Chunk | Attempt):
        return json_ready(value.as_dict())
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "as_integer_ratio") and not isinstance(value, int | float):
        return float(value)
    return value


# --- runs and chunks -----------------------------------------------------------------------------------------

def run_summary(run: Run, chunks: list[Chunk]) -> list[RenderableType]:
    """A run in a few lines: state, window, times (with their zone), chunk tally, figures, its error in full."""
    live = [c for c in chunks if c.live]
    ok = sum(c.succeeded for c in live)
    took = duration(seconds_between(run.created_at, run.finished_at))
    head = Text(f"run {run.run_id}  ")
    head.append_text(state(run.status))
    head.append(f"  window {cell(run.window_start)}..{cell(run.window_end)}  "
                f"{'took' if run.finished_at else 'running for'} {took}")
    lines: list[RenderableType] = [wrapped(line) for line in (
        head,
        Text(f"trigger {run.trigger}  redrives {run.redrives}"),
        Text(f"execution {run.execution_name}"),
        Text(f"started {cell(run.created_at)}" + (f"  finished {cell(run.finished_at)}" if run.finished_at else "")),
        Text(f"chunks {len(live)} ({ok} succeeded, {len(live) - ok} not)  visits {cell(run.visits)}  "
             f"staged {cell(run.staged_rows)}  rejected {cell(run.rejected_rows)}"),
        Text("conflicts " + ", ".join(f"{cell(run.count(k))} {k}" for k in COUNTS)),
    )]
    if run.error:
        lines.append(wrapped(f"error: {run.error}", style="red"))
    return lines


def wrapped(text: str | Text, style: str = "") -> Text:
    """A line that wraps at the console's width (other lines are left whole, to be copied)."""
    line = text if isinstance(text, Text) else Text(text, style=style)
    line.no_wrap, line.overflow = False, "fold"
    return line


def chunk_table(console: Console, chunks: list[Chunk], *, errors: bool = True,
                brief: bool = False) -> RenderableType:
    """Chunks, one line each (a long last error is cut: :func:`error_details` has it in full)."""
    columns = [Column("chunk", numeric=True), Column("range"), Column("status"), Column("attempts", numeric=True),
               Column("took", numeric=True, drop=7), Column("visits", numeric=True, drop=6),
               Column("inserted", numeric=True, drop=5), Column("updated", numeric=True, drop=2),
               Column("resolved", numeric=True, drop=3), Column("reopened", numeric=True, drop=1),
               Column("unchanged", numeric=True, drop=4)]
    if errors:
        columns.append(Column("last error", flex=True, drop=8, max_width=80))
    rows = []
    for c in chunks:
        took = duration(c.duration_ms / 1000) if c.duration_ms is not None else "-"
        # a stale run's chunk: only its own days
        owned = f" ({counted(len(c.owned_days), 'day')})" if c.owned_days is not None else ""
        row = [c.chunk_id, f"{cell(c.chunk_start)}..{cell(c.chunk_end)}{owned}", state(c.status),
               c.attempts, took, c.visits, *(getattr(c, k) for k in COUNTS)]
        if errors:
            row.append(_first_line(c.last_error))
        rows.append(row)
    if brief:
        keep = [i for i, c in enumerate(columns) if c.header in ("chunk", "range", "status", "attempts")]
        columns, rows = [columns[i] for i in keep], [[r[i] for i in keep] for r in rows]
    return fitted_table(console, columns, rows)


def error_details(chunks: Sequence[Chunk | Mapping[str, Any]]) -> list[RenderableType]:
    """The full last error of every chunk that has one (tables cut them)."""
    out: list[RenderableType] = []
    for c in chunks:
        if c.get("last_error") and c["status"] != "SUCCEEDED":
            line = Text(f"chunk {c['chunk_id']} {cell(c['chunk_start'])}..{cell(c['chunk_end'])} (")
            line.append_text(state(c["status"]))
            line.append(f", {counted(c['attempts'], 'attempt')}): {c['last_error']}")
            out.append(wrapped(line))
    return [Text("errors in full:", style="bold"), *out] if out else []


def runs_table(console: Console, runs: list[Run]) -> RenderableType:
    columns = [Column("run", numeric=True), Column("status"), Column("window"), Column("trigger", drop=6),
               Column("started", drop=9), Column("took", numeric=True, drop=8), Column("chunks ok", numeric=True),
               Column("inserted", numeric=True, drop=5), Column("updated", numeric=True, drop=2),
               Column("resolved", numeric=True, drop=3), Column("reopened", numeric=True, drop=1),
               Column("unchanged", numeric=True, drop=4), Column("rejected", numeric=True, drop=4),
               Column("error", flex=True, drop=7, max_width=80)]
    rows = [[r.run_id, state(r.status), f"{cell(r.window_start)}..{cell(r.window_end)}", r.trigger,
             r.created_at, duration(seconds_between(r.created_at, r.finished_at)),
             f"{r.tally('chunks_succeeded')}/{r.tally('chunks')}", *(getattr(r, k) for k in COUNTS), r.rejected_rows,
             _first_line(r.error)] for r in runs]
    return fitted_table(console, columns, rows)


def redrive_plan(console: Console, run: Run, rows: list[dict[str, Any]]) -> list[RenderableType]:
    head = Text(f"run {run.run_id} (")
    head.append_text(state(run.status))
    head.append(f"): {counted(len(rows), 'chunk')} would be redriven (dry run, nothing changed)")
    columns = [Column("chunk", numeric=True), Column("range"), Column("status"), Column("attempts", numeric=True),
               Column("age", numeric=True, drop=2), Column("in DLQ", drop=3),
               Column("last error", flex=True, drop=1, max_width=80)]
    table = fitted_table(console, columns, [
        [r["chunk_id"], f"{r['chunk_start']}..{r['chunk_end']}", state(r["status"]), r["attempts"],
         duration(r["age_s"]), "yes" if r["in_dead_letter_queue"] else "no", _first_line(r["last_error"])]
        for r in rows])
    return [head, table, *error_details(rows)]


def _first_line(text: str | None) -> str | None:
    return text.splitlines()[0] if text else text


# --- the plan ------------------------------------------------------------------------------------------------

def plan_preview(console: Console, p: Preview) -> list[RenderableType]:
    """The plan preview: chunks with estimates and earlier coverage, the execution's budgets, the cost."""
    s = p.sizing
    how = (f"fixed: at most {s.max_chunk_rows:,} visits and {s.chunk_days} days per chunk" if s.mode == "fixed" else
           f"adaptive: {s.rows_per_second:,.0f} visits/s ({s.throughput_source}), target "
           f"{duration(s.target_chunk_seconds)} per chunk (at most {s.max_chunk_rows:,} visits), at least "
           f"{s.min_chunks} chunks, at most {s.chunk_days} days each")
    shown = p.as_dict()["chunks"]
    rows = [[c.chunk_id, c.start, c.end, c.days, c.estimated_rows, duration((c.estimated_ms or 0) / 1000),
             _cover(c, d)] for c, d in zip(p.chunks, shown, strict=True)]
    columns = [Column("chunk", numeric=True), Column("start"), Column("end"), Column("days", numeric=True, drop=2),
               Column("est. visits", numeric=True), Column("est. time", numeric=True, drop=3),
               Column("covered before", wrap=True, drop=1)]
    b = p.budget
    money = p.cost.dollars()
    stale: list[RenderableType] = []
    if p.stale_days is not None:
        days = counted(len(p.stale_days), "day")
        stale = [Text(f"a stale run would recompute {days} of the window now:" if p.stale_days
                      else "a stale run would recompute nothing now: every day of the window is FRESH")]
        stale += [Text(f"  {d.date}  {d.state:<5}  {d.why()}") for d in p.stale_days[:60]]
        if len(p.stale_days) > 60:
            stale.append(Text(f"  ... and {len(p.stale_days) - 60} more (--json lists every day)"))
        stale.append(Text(""))
    return [
        *stale,
        Text(f"window {cell(p.window_start)}..{cell(p.window_end)}: {p.visits:,} visits (non-cancelled; staging "
             f"rejects the ineligible few), {counted(len(p.chunks), 'chunk')}"),
        Text(f"sizing {how}"),
        Text(""),
        fitted_table(console, columns, rows),
        Text(""),
        Text("limits of one execution (inline Map):"),
        Text(f"  history events  ~{b.history_events:,} of {MAX_HISTORY_EVENTS:,} "
             f"({b.history_events / MAX_HISTORY_EVENTS:.1%})"),
        Text(f"  Map input       {b.map_input_bytes:,} bytes (+ ~{STATE_OVERHEAD_BYTES:,} of run state) of "
             f"{MAX_PAYLOAD_BYTES:,} ({(b.map_input_bytes + STATE_OVERHEAD_BYTES) / MAX_PAYLOAD_BYTES:.1%})"),
        Text(f"  chunks          {b.chunks:,} of at most {b.max_chunks:,}"
             + ("" if b.fits else "  ** too many: split the window **"), style="" if b.fits else "bold red"),
        Text(""),
        Text(f"cost of one run in AWS (us-east-1 on-demand prices; functions at {FUNCTION_MEMORY_GB:g} GB):"),
        plain_table([Column("service"), Column("usage"), Column("price"), Column("cost", numeric=True)], [
            ["Lambda", f"{p.cost.lambda_gb_seconds:,.1f} GB-s, {p.cost.lambda_requests} invocations",
             f"${PRICES['lambda_gb_second_arm64']:.10f}/GB-s", f"${money['lambda']:.4f}"],
            ["Step Functions", f"{p.cost.state_transitions:,} state transitions",
             f"${PRICES['state_transition'] * 1000:.3f}/1k", f"${money['step_functions']:.4f}"],
            ["SQS", f"{p.cost.sqs_requests:,} requests", f"${PRICES['sqs_request'] * 1e6:.2f}/M",
             f"${money['sqs']:.4f}"],
            ["DynamoDB", f"{p.cost.dynamodb_writes:,} writes", f"${PRICES['dynamodb_write_unit'] * 1e6:.3f}/M",
             f"${money['dynamodb']:.4f}"],
            ["total", "", "", f"${p.cost.total:.4f}"],
        ]),
    ]


def _cover(chunk: Any, shown: dict[str, Any]) -> str:
    if not shown["days_covered"]:
        return "never"
    runs = ", ".join(str(r) for r in shown["covered_by_runs"][-3:])
    part = "all days" if shown["days_covered"] == chunk.days else f"{shown['days_covered']}/{chunk.days} days"
    return f"{part}, runs {runs}, oldest {shown['oldest_coverage'][:10]}"


# --- metrics and logs ----------------------------------------------------------------------------------------

def metrics_table(console: Console, summary: dict[str, dict[str, float]]) -> RenderableType:
    """The run's CloudWatch metrics (EMF) as the handlers emitted them: values, sum, min, max."""
    rows = [[name, int(m["count"]), _figure(m["sum"]), _figure(m["min"]), _figure(m["max"])]
            for name, m in sorted(summary.items())]
    return fitted_table(console, [Column("metric"), Column("values", numeric=True), Column("sum", numeric=True),
                                  Column("min", numeric=True, drop=1), Column("max", numeric=True, drop=2)], rows)


def _figure(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:,.2f}"


LOG_KEYS_SHOWN = ("timestamp", "level", "function", "chunk_id", "message")


def log_line(record: dict[str, Any]) -> Text:
    """One handler log line for people: time, level, function, chunk, message, then the other keys."""
    level = str(record.get("level", ""))
    line = Text(f"{record.get('timestamp', '-')} ")
    line.append(f"{level:<7}", style={"ERROR": "bold red", "WARNING": "yellow", "CRITICAL": "bold red"}.get(level, ""))
    function = record.get("function") or record.get("function_name") or record.get("service") or ""
    line.append(f" {function}")
    if record.get("chunk_id") is not None:
        line.append(f" chunk {record['chunk_id']}")
    line.append(f": {record.get('message', '')}")
    extra = {k: v for k, v in record.items() if k not in (*LOG_KEYS_SHOWN, "function_name", "service", "name", "run_id",
                                                           "location", "correlation_id", "xray_trace_id",
                                                           "cold_start", "function_arn", "function_memory_size",
                                                           "function_request_id", "sampling_rate")}
    if extra:
        line.append("  " + " ".join(f"{k}={v}" for k, v in extra.items()), style="dim")
    return line

