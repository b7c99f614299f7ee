"""Inputs and secrets: a malformed connection string is one line that never shows the password, in any output
and any mode; a window the pipeline cannot compute is refused before any run row exists."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from chunking import cli
from chunking.db import check_dsn, redact
from chunking.errors import ConfigError

SECRET = "Sup3r/s3cret"

MALFORMED = [
    f"postgresql//etl:{SECRET}@db.internal:5432/evv",           # no scheme separator
    f"postgresql://etl:{SECRET}%zz@db.internal:5432/evv",       # bad %-encoding
    f"postgresql://etl:{SECRET}@[::1/evv",                       # a missing ]
    f"mysql://etl:{SECRET}@db.internal/evv",                     # another scheme
    f"host=db.internal password={SECRET} port=notaport",         # a bad keyword value
    f"host=db.internal password='{SECRET}",                      # an unterminated quote
    f"etl:{SECRET}@db.internal",                                 # neither a URL nor key=value pairs
]


@pytest.mark.parametrize("dsn", MALFORMED)
def test_a_malformed_connection_string_is_one_config_error_without_the_password(dsn):
    with pytest.raises(ConfigError) as caught:
        check_dsn(dsn)
    message = str(caught.value)
    assert message.startswith("invalid database connection string") and "\n" not in message
    assert SECRET not in message and "s3cret" not in message


@pytest.mark.parametrize("dsn", MALFORMED)
@pytest.mark.parametrize("mode", [[], ["--json"], ["--debug"]])
def test_the_cli_never_prints_the_password_of_a_malformed_connection_string(dsn, mode):
    result = subprocess.run([sys.executable, "-m", "chunking.cli", *mode, "status", "--database-url", dsn],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "s3cret" not in result.stdout + result.stderr
    said = json.loads(result.stdout)["error"] if mode == ["--json"] else result.stderr
    assert "invalid database connection string" in said


def test_redact_removes_the_password_wherever_libpq_echoes_it():
    dsn = f"postgresql://etl:{SECRET}@db/evv"
    assert SECRET not in redact(f'could not parse "{dsn}" near {SECRET}', dsn, quoted=True)


@pytest.mark.parametrize(("start", "end"), [("9999-12-20", "9999-12-30"), ("0001-01-01", "0001-01-03")])
def test_a_window_outside_the_computable_dates_is_refused_before_any_run(start, end, capsys, database_url):
    code = cli.main(["run", "--local", "--start", start, "--end", end, "--database-url", database_url])
    err = capsys.readouterr().err
    assert code == 2 and "outside the dates the pipeline can compute" in err
    import psycopg2

    conn = psycopg2.connect(database_url)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM etl.runs WHERE window_end > '9999-01-01' OR window_start < '0002-01-01'")
        assert cur.fetchone()[0] == 0
    conn.close()
