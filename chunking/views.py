"""How runs and chunks are shown: tables for people, JSON for programs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chunking.console import cell, duration, table

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
