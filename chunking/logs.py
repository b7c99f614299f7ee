"""A run's log lines, wherever its handlers wrote them: locally the JSON-lines files under ``.runs/logs``
(one per execution, named after it), in AWS CloudWatch Logs (the stack's function log groups), found by
correlation id (the execution's name, which every handler line carries)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from chunking.errors import ConfigError
from chunking.ledger import Run
from chunking.liveness import is_local

Row = dict[str, Any]

__all__ = ["correlation_ids", "is_local", "local_files", "read_cloudwatch", "read_local", "stack_log_groups"]


def correlation_ids(run: Run) -> list[str]:
    """The executions of a run: its first, and the latest redrive's (recorded as the executor in AWS)."""
    ids = [run.execution_name]
    executor = str(run.executor or "")
    if executor and not is_local(run) and executor not in ids:
        ids.append(executor)
    return ids


def local_files(logs_dir: Path, run: Run) -> list[Path]:
    """The run's log files: its execution's, then its redrives' (``redrive-<run>-<n>-...``), oldest first."""
    first = logs_dir / f"{run.execution_name}.jsonl"
    redrives = sorted(logs_dir.glob(f"redrive-{run.run_id}-*.jsonl"), key=lambda p: p.stat().st_mtime)
    return [p for p in [first, *redrives] if p.is_file()]


def read_local(files: list[Path], *, chunk_id: int | None = None) -> Iterator[Row]:
    """The JSON log lines of the files (other lines, such as stray output, are skipped), of one chunk if asked."""
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                record = _json_line(line)
                if record is not None and (chunk_id is None or record.get("chunk_id") == chunk_id):
                    yield record


def _json_line(text: str) -> Row | None:
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or "_aws" in record:  # EMF metric lines are not log lines
        return None
    return record


def stack_log_groups(stack_name: str, *, region: str | None = None) -> list[str]:
    """The stack's Lambda log groups (template.yaml declares one per function)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = boto3.client("cloudformation", region_name=region)
        groups = []
        for page in client.get_paginator("list_stack_resources").paginate(StackName=stack_name):
            groups += [r["PhysicalResourceId"] for r in page["StackResourceSummaries"]
                       if r["ResourceType"] == "AWS::Logs::LogGroup"
                       and str(r.get("PhysicalResourceId", "")).startswith("/aws/lambda/")]
    except (ClientError, BotoCoreError) as exc:
        raise ConfigError(f"cannot list the log groups of stack {stack_name}: {exc}") from None
    return sorted(groups)


def read_cloudwatch(log_groups: list[str], ids: list[str], *, chunk_id: int | None = None,
                    since: datetime | None = None, region: str | None = None) -> list[Row]:
    """The JSON log lines of the executions ``ids`` in ``log_groups``, oldest first (FilterLogEvents by the
    quoted correlation id, then exact matching here)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    found: list[tuple[int, Row]] = []
    try:
        client = boto3.client("logs", region_name=region)
        paginator = client.get_paginator("filter_log_events")
        for group in log_groups:
            for cid in ids:
                kwargs: dict[str, Any] = {"logGroupName": group, "filterPattern": f'"{cid}"'}
                if since is not None:
                    kwargs["startTime"] = int(since.timestamp() * 1000) - 60_000
                for page in paginator.paginate(**kwargs):
                    for event in page.get("events", []):
                        record = _json_line(event.get("message", ""))
                        if record is None or record.get("correlation_id") != cid:
                            continue
                        if chunk_id is not None and record.get("chunk_id") != chunk_id:
                            continue
                        found.append((int(event.get("timestamp", 0)), {**record, "log_group": group}))
    except (ClientError, BotoCoreError) as exc:
        raise ConfigError(f"cannot read CloudWatch Logs: {exc}") from None
    return [record for _, record in sorted(found, key=lambda item: item[0])]
