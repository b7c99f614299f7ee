"""Every way a chunk delivery can go wrong, forced for real, judged by the output table and the ledger.

Real PostgreSQL; real SQS and DynamoDB in moto; the chunk worker exactly as the Lambda handler builds it."""

from __future__ import annotations

import time
from datetime import date

import pytest

from chunking import ledger, tasks
from chunking.drills import fault_drill
from chunking.errors import TransientError
from tests import oracle
from tests.factories import conflicts, insert, update, visit
from tests.integration.worker_env import holding, in_thread, make_env

DAY = date(2026, 10, 5)


def RUN_LOCK(env):
    return "SELECT 1 FROM etl.runs WHERE run_id = %s FOR UPDATE", (env.run["run_id"],)


@pytest.fixture
def env(conn, database_url, aws):
    insert(conn, visit(1, "2026-10-05", "09:00", "11:00", provider=1),
           visit(2, "2026-10-05", "10:00", "12:00", provider=2),
           visit(3, "2026-10-05", "13:00", "14:00", provider=1, caregiver=2),
           visit(4, "2026-10-05", "13:30", "15:00", provider=2, caregiver=2))
    return make_env(conn, database_url, start=DAY, end=DAY)


def _attempts(conn, run_id):
    rows = ledger.list_attempts(conn, run_id)
    conn.rollback()
    return [(a["attempt"], a["outcome"]) for a in rows]


def _chunk(conn, env):
    row = ledger.list_chunks(conn, env.run["run_id"])[0]
    conn.rollback()
    return row


def _wait_for_lock_wait(conn, timeout=10.0, waiters=1):
    """Wait until ``waiters`` chunk backends are blocked on a lock; return the pid of one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'conflict-map run %%' "
                        "AND wait_event_type = 'Lock'")
            rows = cur.fetchall()
        conn.rollback()
        if len(rows) >= waiters:
            return rows[0][0]
        time.sleep(0.05)
    raise AssertionError(f"{waiters} chunk(s) never blocked on the lock")


def test_same_message_delivered_twice_sequentially_is_applied_once(conn, env):
    worker = env.worker()
    first = worker.process(env.record(env.body()), lambda: 60_000)
    table = conflicts(conn)
    # when the same message is delivered again (SQS at-least-once)
    again = worker.process(env.record(env.body()), lambda: 60_000)
    # then the idempotency layer answers with the stored result and nothing is written again
    assert first["status"] == again["status"] == "SUCCEEDED" and again == first
    assert conflicts(conn) == table and len(table) == 2
    assert _attempts(conn, env.run["run_id"]) == [(1, "SUCCEEDED")]


def test_same_message_delivered_twice_concurrently_is_applied_once(conn, env, database_url):
    # given the first delivery blocked inside its chunk (the run row is held by this test)
    with holding(database_url, *RUN_LOCK(env)):
        first_thread, first = in_thread(env.worker("w1").process, env.record(env.body()), lambda: 60_000)
        _wait_for_lock_wait(conn)
        # when a second container receives a duplicate of the message meanwhile
        with pytest.raises(TransientError, match="in progress"):
            env.worker("w2").process(env.record(env.body(), message_id="dup"), lambda: 60_000)
    # then it is told to retry later; once the first finishes, the retry gets the stored result
    first_thread.join(10)
    retry = env.worker("w2").process(env.record(env.body(), receive_count=2), lambda: 60_000)
    assert first["result"]["status"] == retry["status"] == "SUCCEEDED"
    assert _attempts(conn, env.run["run_id"]) == [(1, "SUCCEEDED")]
    assert len(conflicts(conn)) == 2


def test_ledger_alone_stops_a_concurrent_duplicate(conn, env, database_url):
    # given two deliveries racing with no idempotency layer (as if DynamoDB had lost the record)
    with holding(database_url, *RUN_LOCK(env)):
        a_thread, a = in_thread(env.worker("a", idempotency=False).process, env.record(env.body()), lambda: 60_000)
        b_thread, b = in_thread(env.worker("b", idempotency=False).process, env.record(env.body()), lambda: 60_000)
        _wait_for_lock_wait(conn, waiters=2)  # both deliveries are inside their chunk transaction
    a_thread.join(10)
    b_thread.join(10)
    # then one applies the chunk, the other waits on the chunk's ledger row and finds it done
    assert sorted([a["result"]["status"], b["result"]["status"]]) == ["DUPLICATE", "SUCCEEDED"]
    assert sorted(outcome for _, outcome in _attempts(conn, env.run["run_id"])) == ["DUPLICATE", "SUCCEEDED"]
    chunk = _chunk(conn, env)
    assert (chunk["status"], chunk["inserted"]) == ("SUCCEEDED", 2)
    assert len(conflicts(conn)) == 2


def test_idempotency_record_is_keyed_on_run_and_range_and_expires_in_progress_with_the_invocation(conn, env):
    import boto3

    began = time.time()
    env.worker().process(env.record(env.body()), lambda: 60_000)
    items = boto3.resource("dynamodb").Table(env.settings.idempotency_table).scan()["Items"]
    assert len(items) == 1 and items[0]["status"] == "COMPLETED"
    # in progress, the record would have expired with the invocation (60 s here), not after the default hour
    assert began * 1000 < int(items[0]["in_progress_expiration"]) <= (time.time() + 61) * 1000
    assert int(items[0]["expiration"]) > time.time() + 23 * 3600
    # a message for another chunk id under the same run and range is refused, not answered from the record
    result = env.worker().process(env.record(env.body(chunk_id=2)), lambda: 60_000)
    assert result["status"] == "DEAD_LETTERED" and "different chunk" in result["error"]


def test_lost_idempotency_record_after_commit_changes_nothing(conn, env):
    worker = env.worker()
    worker.process(env.record(env.body()), lambda: 60_000)
    before = {k: v["updated_at"] for k, v in conflicts(conn).items()}
    # when the idempotency record vanishes (expiry, a table wipe) and the message comes again
    assert env.forget_idempotency_records() == 1
    again = worker.process(env.record(env.body()), lambda: 60_000)
    # then the ledger row, committed with the chunk's changes, makes it a no-op
    assert again["status"] == "DUPLICATE" and again["inserted"] == 2
    assert {k: v["updated_at"] for k, v in conflicts(conn).items()} == before
    assert _chunk(conn, env)["attempts"] == 1


def test_redrive_while_the_original_delivery_is_in_flight_applies_once(conn, env, database_url):
    # given the original delivery blocked mid-chunk
    redrive = env.body(task_token="token-of-the-redrive", correlation_id="redrive-1")
    with holding(database_url, *RUN_LOCK(env)):
        original_thread, original = in_thread(env.worker("w1").process, env.record(env.body()), lambda: 60_000)
        _wait_for_lock_wait(conn)
        # when a redrive sends the chunk again with a new task token (a new execution)
        with pytest.raises(TransientError):
            env.worker("w2").process(env.record(redrive), lambda: 60_000)
    original_thread.join(10)
    # then, redelivered after the original committed, the redrive gets its result without re-applying
    result = env.worker("w2").process(env.record(redrive, receive_count=2), lambda: 60_000)
    assert original["result"]["status"] == result["status"] == "SUCCEEDED"
    assert _attempts(conn, env.run["run_id"]) == [(1, "SUCCEEDED")]


def test_connection_dropped_mid_transaction_rolls_back_and_the_retry_gives_the_same_table(conn, env, database_url):
    # given a finished run, then a source edit the next run must write (visit 2 moves, so (1,2) changes)
    env.worker().process(env.record(env.body()), lambda: 60_000)
    tasks.reconcile_run(conn, env.run["run_id"])
    update(conn, 2, scheduled_start="2026-10-05 10:30")
    retry_env = make_env(conn, database_url, start=DAY, end=DAY)
    # and a lock on the row it must update, so its statement blocks half way
    with holding(database_url, "SELECT 1 FROM conflict.conflict_visit_maps WHERE visit_id = 1 FOR UPDATE"):
        thread, outcome = in_thread(retry_env.worker("w1").process, retry_env.record(retry_env.body()),
                                    lambda: 60_000)
        pid = _wait_for_lock_wait(conn)
        # when its connection is killed mid-transaction
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        conn.commit()
        thread.join(10)
    # then the attempt fails as transient, nothing of it is committed, and the retry (a new connection) succeeds
    assert isinstance(outcome["error"], TransientError)
    assert conflicts(conn)[(1, 2)]["overlap_minutes"] == 60.0  # still the old figures
    result = retry_env.worker("w1").process(retry_env.record(retry_env.body(), receive_count=2), lambda: 60_000)
    assert (result["status"], result["updated"], result["unchanged"]) == ("SUCCEEDED", 1, 1)
    assert conflicts(conn)[(1, 2)]["overlap_minutes"] == 30.0
    want, _ = oracle.expected(oracle.load_visits(conn), DAY, DAY)
    assert oracle.actual(conn, DAY, DAY) == want
    chunk = _chunk(conn, retry_env)
    assert (chunk["attempts"], chunk["status"]) == (2, "SUCCEEDED")


def test_chunk_that_would_outlive_its_lambda_is_cancelled_by_the_database(conn, env, database_url):
    # given a lock that holds the chunk longer than its invocation has left (margin 1 s + 1.2 s of budget)
    with holding(database_url, *RUN_LOCK(env)):
        began = time.monotonic()
        with pytest.raises(TransientError, match="timeout"):
            env.worker().process(env.record(env.body()), lambda: 2_200)
        # then PostgreSQL cancelled it within its budget, rolled it back, and the ledger says RETRYING
        assert time.monotonic() - began < 5
    chunk = _chunk(conn, env)
    assert (chunk["status"], chunk["error_type"]) == ("RETRYING", "TransientError")
    assert conflicts(conn) == {}
    # and the next delivery, with time enough, succeeds
    assert env.worker().process(env.record(env.body(), receive_count=2), lambda: 60_000)["status"] == "SUCCEEDED"


def test_too_little_time_left_is_a_transient_error_before_any_work(conn, env):
    with pytest.raises(TransientError, match="not enough to run a chunk"):
        env.worker().process(env.record(env.body()), lambda: 1_500)
    assert conflicts(conn) == {}


@pytest.mark.parametrize(("body", "says"), [
    ("{not json", "body is not JSON"),
    ('{"run_id": 1}', "chunk_id"),
])
def test_poison_message_goes_to_the_dead_letter_queue_at_once(conn, env, body, says):
    # when a malformed message arrives on its first delivery
    result = env.worker().process(env.record(body), lambda: 60_000)
    # then it is not retried (the record succeeds, so SQS deletes it), it is in the DLQ with the reason
    assert result["status"] == "DEAD_LETTERED"
    letters = env.dead_letters()
    assert len(letters) == 1
    assert letters[0]["attributes"]["error_type"] == "PermanentError" and says in letters[0]["attributes"]["error"]
    assert conflicts(conn) == {}


@pytest.mark.parametrize(("override", "says"), [
    ({"run_id": 999}, "unknown run 999"),
    ({"chunk_id": 7}, "has no chunk 7"),
    ({"chunk_end": "2026-10-06"}, "covers 2026-10-05..2026-10-05"),
])
def test_message_naming_no_chunk_of_the_ledger_is_permanent(conn, env, override, says):
    result = env.worker().process(env.record(env.body(**override)), lambda: 60_000)
    assert result["status"] == "DEAD_LETTERED" and says in result["error"]
    assert env.dead_letters()[0]["attributes"]["error"].count(says) == 1


def test_sql_error_in_the_statement_is_permanent_and_not_retried(conn, env):
    # given a constraint the chunk's insert breaks (a deterministic error in the statement itself)
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE conflict.conflict_visit_maps ADD CONSTRAINT no_travel_today "
                    "CHECK (conflict_date <> '2026-10-05')")
    conn.commit()
    try:
        result = env.worker().process(env.record(env.body()), lambda: 60_000)
    finally:
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE conflict.conflict_visit_maps DROP CONSTRAINT no_travel_today")
        conn.commit()
    # then the first delivery gives up: ledger FAILED, message dead-lettered with the reason
    assert result["status"] == "DEAD_LETTERED" and "CheckViolation" in result["error"]
    chunk = _chunk(conn, env)
    assert (chunk["status"], chunk["attempts"], chunk["error_type"]) == ("FAILED", 1, "PermanentError")
    assert env.dead_letters()[0]["attributes"]["attempts"] == "1"


def test_transient_failure_is_retried_until_the_last_delivery_then_dead_lettered(conn, env):
    worker = env.worker()
    faulty = env.settings.model_copy(update={"fault_chunks": frozenset({DAY})})
    worker.settings, worker.before_commit = faulty, fault_drill(faulty)
    for delivery in range(1, faulty.max_receive_count):
        with pytest.raises(TransientError, match="fault drill"):
            worker.process(env.record(env.body(), receive_count=delivery), lambda: 60_000)
        assert _chunk(conn, env)["status"] == "RETRYING"
    # the last delivery gives up: FAILED in the ledger, the message in the DLQ, nothing written
    result = worker.process(env.record(env.body(), receive_count=faulty.max_receive_count), lambda: 60_000)
    assert result["status"] == "DEAD_LETTERED"
    chunk = _chunk(conn, env)
    assert (chunk["status"], chunk["attempts"]) == ("FAILED", faulty.max_receive_count)
    assert [outcome for _, outcome in _attempts(conn, env.run["run_id"])] == ["FAILED"] * faulty.max_receive_count
    assert env.dead_letters()[0]["attributes"]["error_type"] == "TransientError"
    assert conflicts(conn) == {}


def test_chunk_of_a_run_that_is_no_longer_running_is_refused(conn, env):
    ledger.abandon_run(conn, env.run["run_id"], "test")
    result = env.worker().process(env.record(env.body()), lambda: 60_000)
    assert result["status"] == "DEAD_LETTERED"
    assert f"run {env.run['run_id']} is ABANDONED: chunk not applied" in result["error"]
    assert conflicts(conn) == {}

