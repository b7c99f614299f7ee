"""How runs and chunks are shown: tables for people, JSON for programs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chunking.console import cell, duration, table
from chunking.planner import MAX_HISTORY_EVENTS, MAX_PAYLOAD_BYTES, STATE_OVERHEAD_BYTES
from chunking.preview import FUNCTION_MEMORY_GB, PRICES, Preview

COUNTS = ("inserted", "updated", "resolved", "reopened", "unchanged")


def run_json(run: dict[str, Any] | None, chunks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """The machine-readable summary of a run (``--json``)."""
    if run is None:
        return {"run_id": None, "status": "REJECTED", "chunks": 0, **dict.fromkeys(COUNTS, 0),
                "rejected": 0, **extra}
    live = [c for c in chunks if c["status"] != "SUPERSEDED"]
    out: dict[str, Any] = {
        "run_id": run["run_id"], "status": run["status"], "window_start": cell(run["window_start"]),
        "window_end": cell(run["window_end"]), "execution": run["execution_name"], "chunks": len(live),
        "chunks_succeeded": sum(c["status"] == "SUCCEEDED" for c in live),
        "visits": int(run["visits"] or 0),
        "days": sum((c["chunk_end"] - c["chunk_start"]).days + 1 for c in live if c["status"] == "SUCCEEDED"),
        **{k: int(run[k] or 0) for k in COUNTS},
        "rejected": int(run["rejected_rows"] or 0),
        "staged_rows": int(run["staged_rows"] or 0),
        "duration_s": _seconds(run.get("created_at"), run.get("finished_at")),
        "failed_chunks": [{"chunk_id": c["chunk_id"], "chunk_start": cell(c["chunk_start"]),
                           "chunk_end": cell(c["chunk_end"]), "status": c["status"], "attempts": c["attempts"],
                           "error": c["last_error"]} for c in live if c["status"] != "SUCCEEDED"],
        "error": run["error"],
    }
    out.update(extra)
    return out


def _seconds(start: Any, end: Any) -> float | None:
    if isinstance(start, datetime):
        end = end if isinstance(end, datetime) else datetime.now(UTC)
        return round((end - start).total_seconds(), 3)
    return None


def run_summary(run: dict[str, Any], chunks: list[dict[str, Any]]) -> str:
    live = [c for c in chunks if c["status"] != "SUPERSEDED"]
    ok = sum(c["status"] == "SUCCEEDED" for c in live)
    lines = [
        f"run {run['run_id']}  {run['status']}  window {cell(run['window_start'])}..{cell(run['window_end'])}"
        f"  ({duration(_seconds(run.get('created_at'), run.get('finished_at')))})",
        f"execution {run['execution_name']}  trigger {run['trigger']}  redrives {run['redrives']}",
        f"chunks {len(live)} ({ok} succeeded, {len(live) - ok} not)  staged visits {cell(run['staged_rows'])}",
        "",
        table(["visits", *COUNTS, "rejected"],
              [[run["visits"], *(run[k] for k in COUNTS), run["rejected_rows"]]]),
    ]
    if run.get("error"):
        lines += ["", f"error: {run['error']}"]
    return "\n".join(lines)


def chunk_table(chunks: list[dict[str, Any]]) -> str:
    rows = []
    for c in chunks:
        rows.append([c["chunk_id"], f"{cell(c['chunk_start'])}..{cell(c['chunk_end'])}", c["status"],
                     c["attempts"], duration(c["duration_ms"] / 1000) if c["duration_ms"] is not None else "-",
                     c["visits"], *(c[k] for k in COUNTS), c["last_error"]])
    return table(["chunk", "range", "status", "attempts", "took", "visits", *COUNTS, "last error"], rows)


def runs_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    for r in runs:
        rows.append([r["run_id"], r["status"], f"{cell(r['window_start'])}..{cell(r['window_end'])}", r["trigger"],
                     r["created_at"], duration(_seconds(r["created_at"], r["finished_at"])),
                     f"{r['chunks_succeeded']}/{r['chunks']}", r["inserted"], r["updated"], r["resolved"],
                     r["reopened"], r["unchanged"], r["rejected_rows"], r["error"]])
    return table(["run", "status", "window", "trigger", "started", "took", "chunks ok", *COUNTS, "rejected",
                  "error"], rows, max_width=50)


def json_ready(value: Any) -> Any:
    """Dates and datetimes as ISO strings, recursively."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_ready(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "as_integer_ratio") and not isinstance(value, int | float):
        return float(value)
    return value


def plan_preview(p: Preview) -> str:
    """The plan preview: chunks with estimates and earlier coverage, the execution's budgets, the cost."""
    s = p.sizing
    how = (f"fixed: at most {s.max_chunk_rows:,} visits and {s.chunk_days} days per chunk" if s.mode == "fixed" else
           f"adaptive: {s.rows_per_second:,.0f} visits/s ({s.throughput_source}), target {s.target_chunk_seconds:.0f} s"
           f" per chunk (at most {s.max_chunk_rows:,} visits), at least {s.min_chunks} chunks, "
           f"at most {s.chunk_days} days each")
    rows = []
    for c, cover in zip(p.chunks, [_cover(c, d) for c, d in zip(p.chunks, p.as_dict()["chunks"], strict=True)],
                        strict=True):
        rows.append([c.chunk_id, c.start, c.end, c.days, c.estimated_rows, duration((c.estimated_ms or 0) / 1000),
                     cover])
    b = p.budget
    money = p.cost.dollars()
    lines = [
        f"window {cell(p.window_start)}..{cell(p.window_end)}: {p.visits:,} visits (non-cancelled; staging rejects "
        f"the ineligible few), {len(p.chunks)} chunks",
        f"sizing {how}",
        "",
        table(["chunk", "start", "end", "days", "est. visits", "est. time", "covered before"], rows),
        "",
        "limits of one execution (inline Map):",
        f"  history events  ~{b.history_events:,} of {MAX_HISTORY_EVENTS:,} "
        f"({b.history_events / MAX_HISTORY_EVENTS:.1%})",
        f"  Map input       {b.map_input_bytes:,} bytes (+ ~{STATE_OVERHEAD_BYTES:,} of run state) of "
        f"{MAX_PAYLOAD_BYTES:,} ({(b.map_input_bytes + STATE_OVERHEAD_BYTES) / MAX_PAYLOAD_BYTES:.1%})",
        f"  chunks          {b.chunks:,} of at most {b.max_chunks:,}" + ("" if b.fits else
                                                                           "  ** too many: split the window **"),
        "",
        f"cost of one run in AWS (us-east-1 on-demand prices; functions at {FUNCTION_MEMORY_GB:g} GB):",
        table(["service", "usage", "price", "cost"], [
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
    return "\n".join(lines)


def _cover(chunk: Any, shown: dict[str, Any]) -> str:
    if not shown["days_covered"]:
        return "never"
    runs = ", ".join(str(r) for r in shown["covered_by_runs"][-3:])
    part = "all days" if shown["days_covered"] == chunk.days else f"{shown['days_covered']}/{chunk.days} days"
    return f"{part}, runs {runs}, oldest {shown['oldest_coverage'][:10]}"


def metrics_table(summary: dict[str, dict[str, float]]) -> str:
    """The run's CloudWatch metrics (EMF) as the handlers emitted them: values, sum, min, max."""
    rows = [[name, int(m["count"]), _figure(m["sum"]), _figure(m["min"]), _figure(m["max"])]
            for name, m in sorted(summary.items())]
    return table(["metric", "values", "sum", "min", "max"], rows)


def _figure(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:,.2f}"
