"""Bad input everywhere gets one line saying what is wrong, a non-zero exit (or a failed execution or
record), and no change to any table. docs/bad-input.md lists these cases; keep the two in step."""

from __future__ import annotations

from datetime import date

import pytest

from chunking import ledger
from chunking.emulator import LocalCloud, LocalOptions

pytestmark = pytest.mark.e2e


def _ledger_size(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT (SELECT count(*) FROM etl.runs), (SELECT count(*) FROM etl.chunks), "
                    "(SELECT count(*) FROM conflict.conflict_visit_maps), (SELECT count(*) FROM analytics.visits)")
        row = cur.fetchone()
    conn.rollback()
    return row


CLI_CASES = [
    # (args, environment, exit code, what the one line says)
    (["run", "--local", "--start", "2026-13-01", "--end", "2026-10-02"], {}, 2,
     "argument --start: date is not a valid date: '2026-13-01'"),
    (["run", "--local", "--start", "01/10/2026", "--end", "2026-10-02"], {}, 2,
     "argument --start: date must be an ISO date YYYY-MM-DD, got '01/10/2026'"),
    (["run", "--local", "--start", "2026-10-05", "--end", "2026-10-01"], {}, 2,
     "end date 2026-10-01 is before start date 2026-10-05"),
    (["run", "--local", "--start", "2026-10-01", "--end", "2026-11-30"], {"ETL_MAX_WINDOW_DAYS": "30"}, 2,
     "window 2026-10-01..2026-11-30 spans 61 days, over the maximum of 30"),
    (["run", "--local", "--start", "2026-10-01"], {}, 2, "give both --start and --end"),
    (["run", "--local", "--start", "2026-10-01", "--end", "2026-10-02", "--max-concurrency", "0"], {}, 2,
     "argument --max-concurrency: must be at least 1, got 0"),
    (["run", "--local", "--start", "2026-10-01", "--end", "2026-10-02", "--chunk-days", "two"], {}, 2,
     "argument --chunk-days: must be a whole number, got 'two'"),
    (["run", "--local", "--start", "2026-10-01", "--end", "2026-10-02"], {"ETL_CHUNK_DAYS": "seven"}, 2,
     "setting ETL_CHUNK_DAYS must be an integer, got 'seven'"),
    (["run", "--local", "--start", "2026-10-01", "--end", "2026-10-02"], {"ETL_FAULT_CHUNKS": "monday"}, 2,
     "setting ETL_FAULT_CHUNKS must list ISO dates (YYYY-MM-DD), got 'monday'"),
    (["plan", "--start", "2026-10-01", "--end", "2027-12-01"], {}, 2, "over the maximum of 366"),
    (["redrive", "--run-id", "999", "--local"], {}, 2, "no run 999 in the ledger"),
    (["status", "--run-id", "999"], {}, 2, "no run 999 in the ledger"),
    (["abandon", "--run-id", "999"], {}, 2, "no run 999 in the ledger"),
    (["seed", "--visits", "0", "--start", "2026-10-01", "--days", "3"], {}, 2,
     "argument --visits: must be at least 1, got 0"),
    (["frobnicate"], {}, 2, "invalid choice: 'frobnicate'"),
]


def _invoke(args, database_url, capsys):
    """Run the CLI in-process like a shell would: argparse's own errors exit through SystemExit."""
    from chunking import cli

    capsys.readouterr()
    try:
        code = cli.main([*args, "--database-url", database_url] if args[0] != "frobnicate" else args)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("args", "environment", "code", "says"), CLI_CASES,
                         ids=[" ".join([*c[0][:1], c[3][:40]]) for c in CLI_CASES])
def test_bad_cli_input_is_one_line_and_changes_nothing(conn, database_url, capsys, monkeypatch, tmp_path,
                                                       args, environment, code, says):
    monkeypatch.setenv("ETL_RUNS_DIR", str(tmp_path))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    before = _ledger_size(conn)
    exit_code, err = _invoke(args, database_url, capsys)
    assert exit_code == code
    assert says in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert _ledger_size(conn) == before


def test_seed_refuses_to_mix_with_existing_visits(conn, etl):
    assert etl("seed", "--visits", "10", "--start", "2026-10-01", "--days", "1").code == 0
    again = etl("seed", "--visits", "10", "--start", "2026-10-01", "--days", "1")
    assert again.code == 2 and "already holds 10 visits: pass --replace" in again.err
    assert _ledger_size(conn)[3] == 10


def test_redrive_of_a_run_that_did_not_fail_is_refused(conn, etl):
    run = ledger.begin_run(conn, execution_name="x", trigger="t", executor="t", window_start=date(2026, 10, 1),
                           window_end=date(2026, 10, 1), chunk_days=1, max_chunk_rows=1, max_concurrency=1)
    result = etl("redrive", "--run-id", str(run["run_id"]), "--local")
    assert result.code == 2
    assert f"run {run['run_id']} is RUNNING: only a FAILED or STOPPED run can be redriven" in result.err


def test_uninitialised_database_is_named(server_url, capsys):
    import uuid

    import psycopg2
    import psycopg2.extensions
    from psycopg2 import sql

    from chunking import cli

    name = f"etl_empty_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        code = cli.main(["status", "--database-url", psycopg2.extensions.make_dsn(server_url, dbname=name)])
        assert code == 2
        assert "run `etl-pipeline db init` first" in capsys.readouterr().err
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


def test_unreachable_database_is_one_line(capsys):
    from chunking import cli

    code = cli.main(["status", "--database-url", "postgresql://nobody@127.0.0.1:1/none"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot connect to the database" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("payload", "says"), [
    ({"start_date": "2026-10-05", "end_date": "2026-10-01"}, "end_date 2026-10-01 is before start_date 2026-10-05"),
    ({"start_date": "2026-10-01", "end_date": "2027-12-31"}, "over the maximum of 366"),
    ({"max_concurrency": 100}, "max_concurrency"),
    ({"redrive_run_id": 12345}, "no run 12345 in the ledger"),
    ({"surprise": True}, "surprise"),
])
def test_bad_state_machine_input_is_rejected_by_validate_config(conn, database_url, tmp_path, payload, says):
    before = _ledger_size(conn)
    with LocalCloud(database_url, options=LocalOptions(max_concurrency=1), state_dir=tmp_path) as cloud:
        described = cloud.wait(cloud.start_execution("bad-input", payload))
        entered = [e["stateEnteredEventDetails"]["name"] for e in cloud.history(described["executionArn"])
                   if "stateEnteredEventDetails" in e]
    assert described["status"] == "FAILED" and described["error"] == "InputError"
    assert says in described["cause"]
    assert entered == ["ValidateConfig", "RequestRejected"]
    assert _ledger_size(conn) == before


# A redrive goes where the ledger says its run ran (issue 11), so it reads the ledger first: the refusal of a
# redrive of a run in AWS with no deployed database is in tests/unit/test_cli_ledger.py.
@pytest.mark.parametrize("command", [["run", "--start", "2026-10-01", "--end", "2026-10-02"]])
def test_aws_mode_without_the_deployed_database_is_refused_not_run_on_the_embedded_one(capsys, monkeypatch,
                                                                                      command):
    from chunking import cli

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr("chunking.db.embedded_database_url", lambda *a: pytest.fail("started the embedded DB"))
    code = cli.main(command)
    err = capsys.readouterr().err
    assert code == 2 and "follows the run in the deployed database's ledger" in err
    assert len(err.strip().splitlines()) == 1
