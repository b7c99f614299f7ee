"""Tracing: off outside Lambda (nothing to set up locally); in Lambda every SQL statement is an X-Ray
subsegment named after its file."""

from __future__ import annotations

from datetime import date

import aws_xray_sdk
import pytest
from aws_xray_sdk.core import xray_recorder

from chunking import ledger, observability, tasks
from tests.factories import insert, visit


class _Captured:
    """An X-Ray emitter that keeps what it would have sent to the daemon."""

    def __init__(self):
        self.sent = []

    def send_entity(self, entity):
        self.sent.append(entity)

    def set_daemon_address(self, address):
        pass

    @property
    def ip(self):
        return "127.0.0.1"

    @property
    def port(self):
        return 2000


def test_tracing_is_off_outside_lambda(monkeypatch):
    monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)
    assert not observability.tracing_enabled()
    with observability.subsegment("sql nothing"):
        pass  # no segment, no daemon, no error


@pytest.mark.parametrize(("env", "enabled"), [
    ({"LAMBDA_TASK_ROOT": "/var/task"}, True),
    ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"}, False),
    ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"}, False),
])
def test_tracing_follows_the_powertools_switches(monkeypatch, env, enabled):
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert observability.tracing_enabled() is enabled


def test_each_sql_statement_is_a_subsegment_in_lambda(conn, monkeypatch):
    insert(conn, visit(1, "2026-10-05", "09:00", "11:00", provider=1),
           visit(2, "2026-10-05", "10:00", "12:00", provider=2))
    run = ledger.begin_run(conn, execution_name="traced", trigger="test", executor="test",
                           window_start=date(2026, 10, 5), window_end=date(2026, 10, 5), chunk_days=1,
                           max_chunk_rows=None, max_concurrency=1)
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)
    was_enabled = aws_xray_sdk.global_sdk_config.sdk_enabled()
    aws_xray_sdk.global_sdk_config.set_sdk_enabled(True)
    emitter = _Captured()
    previous = xray_recorder._emitter
    xray_recorder.configure(emitter=emitter, sampling=False, context_missing="LOG_ERROR")
    try:
        segment = xray_recorder.begin_segment("StageVisits")
        tasks.stage_visits(conn, run["run_id"], date(2026, 10, 5), date(2026, 10, 5))
        names = [sub.name for sub in segment.subsegments]
        statements = [sub.annotations.get("statement") for sub in segment.subsegments]
        xray_recorder.end_segment()
    finally:
        xray_recorder.configure(emitter=previous)
        aws_xray_sdk.global_sdk_config.set_sdk_enabled(was_enabled)
    assert names[:3] == ["sql freshness/begin_snapshot", "sql ledger/lock_run_exclusive",
                         "sql tasks/clear_staged_visits"]
    assert "sql freshness/record_fingerprints" in names
    assert "sql tasks/stage_visits" in names and "sql tasks/analyze_staged_visits" in names
    assert statements[names.index("sql tasks/stage_visits")] == "tasks/stage_visits"
    assert emitter.sent and emitter.sent[-1].name == "StageVisits"
