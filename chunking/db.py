"""Database access: the SQL files, connections fit for Lambda and RDS Proxy, schema versions, and the
embedded PostgreSQL used on a workstation with no server configured."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import warnings
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from chunking.errors import ConfigError, TransientError, describe_db_error
from chunking.observability import subsegment

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = Path(os.environ.get("ETL_SQL_DIR", PROJECT_ROOT / "sql"))
DEFAULT_DATA_DIR = PROJECT_ROOT / ".pgdata"
CONNECT_TIMEOUT_S = 10

Connection = psycopg2.extensions.connection


@cache
def load_sql(name: str) -> str:
    """The text of ``sql/<name>.sql`` (one statement per file, bound parameters only)."""
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise ConfigError(f"SQL file not found: {path}")
    return path.read_text()


def connect(dsn: str, application_name: str = "conflict-map") -> Connection:
    """Open a connection; a failure to connect is transient (the database may be restarting)."""
    try:
        conn = psycopg2.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, application_name=application_name)
    except psycopg2.OperationalError as exc:
        raise TransientError(f"cannot connect to the database: {describe_db_error(exc)}") from exc
    return conn


def fetch_all(conn: Connection, name: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run ``sql/<name>.sql`` and return its rows as dicts (an X-Ray subsegment in Lambda)."""
    with subsegment(f"sql {name}", statement=name), conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(load_sql(name), params or {})
        return [dict(row) for row in cur.fetchall()] if cur.description else []


def fetch_one(conn: Connection, name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    rows = fetch_all(conn, name, params)
    return rows[0] if rows else None


def execute(conn: Connection, name: str, params: Mapping[str, Any] | None = None) -> int:
    """Run ``sql/<name>.sql`` for its effect; returns the affected row count."""
    with subsegment(f"sql {name}", statement=name), conn.cursor() as cur:
        cur.execute(load_sql(name), params or {})
        return cur.rowcount


def set_local(conn: Connection, **values: str) -> None:
    """``SET LOCAL`` through ``set_config(..., true)``: bound values, scoped to the transaction, so an RDS
    Proxy does not pin the connection the way a session-level ``SET`` would."""
    with conn.cursor() as cur:
        for name, value in values.items():
            cur.execute("SELECT set_config(%s, %s, true)", (name, value))


class ConnectionCache:
    """One connection per thread, reused across invocations (a Lambda container runs one at a time;
    the local emulator runs one worker per thread), checked before reuse and reopened when broken."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, dsn: str, application_name: str = "conflict-map") -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "dsn", None) == dsn and self._healthy(conn):
            return conn
        self.close()
        conn = connect(dsn, application_name)
        self._local.conn, self._local.dsn = conn, dsn
        return conn

    @staticmethod
    def _healthy(conn: Connection) -> bool:
        if conn.closed:
            return False
        try:
            if conn.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
                conn.rollback()
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            conn.rollback()
            return True
        except psycopg2.Error:
            return False

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg2.Error):
                conn.close()


@contextlib.contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """Commit on success, roll back on any error."""
    try:
        yield conn
        conn.commit()
    except BaseException:
        if not conn.closed:
            with contextlib.suppress(psycopg2.Error):
                conn.rollback()
        raise


def database_url_from_secret(secret_arn: str, defaults: Mapping[str, Any] | None = None) -> str:
    """Build a DSN from a Secrets Manager secret in the RDS format (username, password, and host, port,
    dbname), read through Powertools Parameters (cached for five minutes); the password is never logged.

    ``defaults`` fill what the secret lacks: a secret RDS manages for its master user holds only the
    username and password, so host, port and dbname then come from settings (DB_HOST, DB_PORT, DB_NAME)."""
    from aws_lambda_powertools.utilities import parameters

    secret = parameters.get_secret(secret_arn, max_age=300)
    try:
        values = {**{k: v for k, v in (defaults or {}).items() if v}, **json.loads(
            secret if isinstance(secret, str) else secret.decode())}
        user, password, host = values["username"], values["password"], values["host"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError("database secret must be JSON with username and password, and host (in the secret "
                          "or as DB_HOST); port and dbname are optional") from exc
    port = values.get("port") or 5432
    dbname = values.get("dbname") or "postgres"
    return f"postgresql://{quote(str(user))}:{quote(str(password))}@{host}:{port}/{quote(str(dbname))}"


# --- schema versions -------------------------------------------------------------------------------------

SCHEMA_DIR = SQL_DIR / "schema"
_MIGRATION_LOCK_KEY = 7_305_210_001  # pg_advisory_xact_lock key: one `db init` at a time


def schema_files() -> list[tuple[int, str, Path]]:
    """The numbered schema files ``NNN_name.sql`` in order."""
    found = []
    for path in sorted(SCHEMA_DIR.glob("[0-9][0-9][0-9]_*.sql")):
        version = int(path.name[:3])
        found.append((version, path.stem[4:], path))
    return found


def migrate(conn: Connection) -> list[str]:
    """Apply the schema files not yet recorded in ``etl.schema_migrations``; safe to repeat.

    Each file runs in its own transaction together with its version row, under an advisory lock."""
    applied_now = []
    for version, name, path in schema_files():
        with transaction(conn), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_KEY,))
            cur.execute((SCHEMA_DIR / "bootstrap.sql").read_text())
            cur.execute("SELECT 1 FROM etl.schema_migrations WHERE version = %s", (version,))
            if cur.fetchone():
                continue
            cur.execute(path.read_text())
            cur.execute("INSERT INTO etl.schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            applied_now.append(f"{version:03d}_{name}")
    return applied_now


def schema_version(conn: Connection) -> int | None:
    """The highest applied schema version, or None when the database was never initialised."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('etl.schema_migrations') IS NOT NULL")
        row = cur.fetchone()
        if not row or not row[0]:
            conn.rollback()
            return None
        cur.execute("SELECT max(version) FROM etl.schema_migrations")
        version = cur.fetchone()
    conn.rollback()
    return version[0] if version else None


def require_schema(conn: Connection) -> None:
    """Fail with a clear message when ``db init`` has not been run (or is behind this code)."""
    latest = schema_files()[-1][0]
    current = schema_version(conn)
    if current is None:
        raise ConfigError("the database has no pipeline schema: run `etl-pipeline db init` first")
    if current < latest:
        raise ConfigError(f"the database schema is at version {current}, this code needs {latest}: "
                          "run `etl-pipeline db init`")


# --- embedded PostgreSQL ---------------------------------------------------------------------------------

def embedded_database_url(data_dir: Path | None = None) -> str:
    """Start (or join) an embedded PostgreSQL under ``data_dir`` and return its URL.

    Used when neither ``--database-url`` nor ``DATABASE_URL`` is given, so that a fresh clone runs with
    no installed server. The server stops when the last process using it exits."""
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) as pgserver loads: harmless here
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - the local extra is installed by `make install`
        raise ConfigError("no database given (--database-url or DATABASE_URL) and the embedded "
                          "PostgreSQL is not installed: run `make install`") from exc
    data_dir = Path(os.environ.get("ETL_DATA_DIR", data_dir or DEFAULT_DATA_DIR))
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    _embedded_servers.append(server)  # keep a reference: the server lives as long as this process
    return str(server.get_uri())


_embedded_servers: list[Any] = []


def resolve_database_url(explicit: str | None, env: Mapping[str, str] | None = None) -> str:
    """``--database-url``, else ``DATABASE_URL``, else an embedded PostgreSQL in the project."""
    env = os.environ if env is None else env
    return explicit or env.get("DATABASE_URL") or embedded_database_url()
