"""The ledger's typed models: statuses as enums, the run rules as properties, extra columns kept."""

from datetime import UTC, date, datetime

import pytest

from chunking import ledger, views
from chunking.errors import InputError
from chunking.ledger import Chunk, ChunkStatus, Run, RunStatus

RUN_ROW = {
    "run_id": 7, "execution_name": "cli-x", "trigger": "cli", "executor": "local:h:1", "driver": "cli-x",
    "window_start": date(2026, 10, 1), "window_end": date(2026, 10, 3), "status": "STOPPED", "chunk_days": 31,
    "max_chunk_rows": None, "max_concurrency": 2, "redrives": 0, "created_at": datetime(2026, 10, 4, tzinfo=UTC),
    "staged_at": None, "finished_at": None, "heartbeat_at": datetime(2026, 10, 4, tzinfo=UTC), "staged_rows": 10,
    "rejected_rows": 1, "invalid_rows": 0, "chunks_planned": 1, "visits": 9, "inserted": 3, "updated": None,
    "resolved": 0, "reopened": 0, "unchanged": 0, "sizing": None, "error": "stopped by SIGTERM", "stale": False,
    "chunks_abandoned": 2,
}


def test_a_run_row_becomes_a_typed_model_and_keeps_what_the_statement_added():
    run = Run.from_row(RUN_ROW)
    assert run.status is RunStatus.STOPPED and run.status == "STOPPED"
    assert run.redrivable and run.abandonable and not run.running and run.local
    assert run.tally("chunks_abandoned") == 2 and run["chunks_abandoned"] == 2
    assert run.count("updated") == 0 and run.count("inserted") == 3
    assert run.as_dict() == RUN_ROW  # the row as the statement returned it: nothing lost, nothing added
    assert views.json_ready(run)["status"] == "STOPPED"


@pytest.mark.parametrize(("status", "redrivable", "abandonable"), [
    ("RUNNING", False, True), ("FAILED", True, True), ("STOPPED", True, True), ("SUCCEEDED", False, False),
    ("ABANDONED", False, False)])
def test_the_run_rules_live_on_the_model(status, redrivable, abandonable):
    run = Run.from_row({**RUN_ROW, "status": status})
    assert (run.redrivable, run.abandonable) == (redrivable, abandonable)
    if not redrivable:
        with pytest.raises(InputError, match=f"run 7 is {status}: only a FAILED or STOPPED run can be redriven"):
            ledger.require_redrivable(run)
    if not abandonable:
        with pytest.raises(InputError, match=f"run 7 is {status}: only a RUNNING, FAILED or STOPPED run"):
            ledger.require_abandonable(run)


def test_a_status_the_schema_does_not_know_is_refused():
    with pytest.raises(ValueError, match="BOGUS"):
        Run.from_row({**RUN_ROW, "status": "BOGUS"})


def test_chunk_finished_and_timed_out_come_from_status_and_the_recorded_flag():
    base = {"run_id": 7, "chunk_id": 1, "chunk_start": date(2026, 10, 1), "chunk_end": date(2026, 10, 2),
            "status": "FAILED", "estimated_rows": 5, "attempts": 1, "timed_out": True,
            "last_error": "QueryCanceled: canceling statement due to statement timeout"}
    chunk = Chunk.from_row(base)
    assert chunk.status is ChunkStatus.FAILED and not chunk.finished and chunk.live and chunk.ran_out_of_time
    assert not Chunk.from_row({**base, "timed_out": False}).ran_out_of_time  # the text decides nothing
    assert Chunk.from_row({**base, "status": "SUPERSEDED"}).finished
    assert not Chunk.from_row({**base, "status": "SUPERSEDED"}).live
