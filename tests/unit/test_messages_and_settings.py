"""Validation at the edges: chunk messages, state machine input, settings, error classes."""

from __future__ import annotations

import json
from datetime import date

import psycopg2
import pytest

from chunking.errors import ConfigError, InputError, PermanentError, TransientError, as_pipeline_error
from chunking.messages import ChunkMessage, RunRequest, parse_iso_date, task_token_of
from chunking.settings import Settings, parse_fault_chunks

GOOD = {"run_id": 3, "chunk_id": 2, "chunk_start": "2026-10-01", "chunk_end": "2026-10-07",
        "correlation_id": "cli-2026-10-01-2026-10-07", "task_token": "token"}


def test_good_chunk_message_parses():
    message = ChunkMessage.parse_body(json.dumps(GOOD))
    assert (message.run_id, message.chunk_start, message.chunk_end) == (3, date(2026, 10, 1), date(2026, 10, 7))
    assert message.key() == {"run_id": 3, "chunk_id": 2, "chunk_start": "2026-10-01", "chunk_end": "2026-10-07"}


@pytest.mark.parametrize(("body", "says"), [
    ("not json", "body is not JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({**GOOD, "chunk_start": "2026-13-01"}), "chunk_start"),
    (json.dumps({**GOOD, "chunk_start": "01/10/2026"}), "ISO date"),
    (json.dumps({**GOOD, "chunk_start": "20261001"}), "ISO date"),
    (json.dumps({**GOOD, "chunk_end": "2026-09-30"}), "before chunk_start"),
    (json.dumps({**GOOD, "run_id": 0}), "run_id"),
    (json.dumps({**GOOD, "run_id": "three"}), "run_id"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "chunk_id"}), "chunk_id"),
    (json.dumps({**GOOD, "sql": "DROP TABLE x"}), "sql"),
])
def test_malformed_chunk_message_is_a_permanent_one_line_error(body, says):
    with pytest.raises(PermanentError, match="malformed chunk message") as caught:
        ChunkMessage.parse_body(body)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_task_token_is_found_even_in_a_malformed_message():
    assert task_token_of(json.dumps({"task_token": "abc", "chunk_start": "nope"})) == "abc"
    assert task_token_of("garbage") is None


@pytest.mark.parametrize(("payload", "says"), [
    ({"start_date": "2026-10-05", "end_date": "2026-10-01"}, "before start_date"),
    ({"start_date": "2026-10-05"}, "both start_date and end_date"),
    ({"start_date": "yesterday", "end_date": "2026-10-01"}, "ISO date"),
    ({"max_concurrency": 0}, "max_concurrency"),
    ({"max_concurrency": 41}, "max_concurrency"),
    ({"chunk_days": 0}, "chunk_days"),
    ({"surprise": 1}, "surprise"),
    ({"redrive_run_id": 3, "start_date": "2026-10-01", "end_date": "2026-10-02"}, "redrive"),
])
def test_bad_run_request_is_an_input_error(payload, says):
    with pytest.raises(InputError, match="invalid run request") as caught:
        RunRequest.parse(payload)
    assert says in str(caught.value)


def test_scheduled_request_has_no_dates():
    request = RunRequest.parse({"trigger": "schedule"})
    assert (request.start_date, request.end_date, request.trigger) == (None, None, "schedule")


def test_parse_iso_date_is_strict():
    assert parse_iso_date("2026-02-28") == date(2026, 2, 28)
    with pytest.raises(InputError, match="not a valid date"):
        parse_iso_date("2026-02-30")


def test_settings_defaults_and_overrides():
    s = Settings.from_env({"ETL_CHUNK_DAYS": "3", "ETL_FAULT_CHUNKS": "2026-10-01, 2026-10-03",
                           "DATABASE_URL": "postgresql://x"})
    assert (s.chunk_days, s.max_receive_count, s.database_url) == (3, 5, "postgresql://x")
    assert s.fault_chunks == {date(2026, 10, 1), date(2026, 10, 3)}


@pytest.mark.parametrize(("env", "says"), [
    ({"ETL_CHUNK_DAYS": "seven"}, "ETL_CHUNK_DAYS must be an integer"),
    ({"ETL_CHUNK_DAYS": "0"}, "ETL_CHUNK_DAYS must be at least 1"),
    ({"ETL_MAX_CONCURRENCY": "50"}, "between 1 and 40"),
    ({"ETL_FAULT_CHUNKS": "2026-10-01,tomorrow"}, "ETL_FAULT_CHUNKS must list ISO dates"),
])
def test_bad_settings_are_one_line_config_errors(env, says):
    with pytest.raises(ConfigError, match=says):
        Settings.from_env(env)


def test_missing_settings_are_named():
    with pytest.raises(ConfigError, match="missing settings: CHUNK_QUEUE_URL, CHUNK_DLQ_URL"):
        Settings().require("chunk_queue_url", "chunk_dlq_url")
    with pytest.raises(ConfigError, match="DATABASE_URL or DB_SECRET_ARN"):
        Settings().require_database()


def test_fault_chunks_empty_by_default():
    assert parse_fault_chunks("") == frozenset()


def test_chunk_timeout_covers_every_delivery():
    s = Settings(worker_timeout_s=300, retry_max_ms=60_000, max_receive_count=5)
    assert s.chunk_timeout_seconds(max_concurrency=4) >= 5 * (300 + 60)


@pytest.mark.parametrize(("exc", "kind"), [
    (psycopg2.OperationalError("server closed the connection unexpectedly"), TransientError),
    (psycopg2.InterfaceError("connection already closed"), TransientError),
    (ConfigError("x"), ConfigError),
    (ValueError("x"), PermanentError),
])
def test_errors_are_classified(exc, kind):
    assert isinstance(as_pipeline_error(exc), kind)


def test_every_setting_declares_its_variable_once_and_the_readme_documents_it():
    from pathlib import Path

    from chunking.settings import _variable

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    variables = {name: _variable(field) for name, field in Settings.model_fields.items()}
    assert len(set(variables.values())) == len(variables)
    assert [v for v in variables.values() if f"`{v}`" not in readme] == []


def test_a_settings_bound_is_declared_on_its_field_and_said_in_its_error():
    from chunking.settings import MAX_CONCURRENCY_LIMIT, bounds_of

    assert bounds_of("max_concurrency") == (1, MAX_CONCURRENCY_LIMIT)
    with pytest.raises(ConfigError, match=f"setting ETL_MAX_CONCURRENCY must be between 1 and {MAX_CONCURRENCY_LIMIT}"):
        Settings(max_concurrency=MAX_CONCURRENCY_LIMIT + 1)
