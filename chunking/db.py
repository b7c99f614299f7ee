"""Database access: the SQL files, connections fit for Lambda and RDS Proxy, schema versions, and the
embedded PostgreSQL used on a workstation with no server configured."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from chunking.errors import ConfigError, TransientError, classify_db_error, describe_db_error
from chunking.observability import subsegment

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# An edge read, at import, documented (README, Settings): where the SQL files are (a Lambda bundle ships them
# beside the code, so the default fits everywhere; tests and tools may point elsewhere).
SQL_DIR = Path(os.environ.get("ETL_SQL_DIR", PROJECT_ROOT / "sql"))
DEFAULT_DATA_DIR = PROJECT_ROOT / ".pgdata"
CONNECT_TIMEOUT_S = 10
MAX_LOCK_WAIT_MS = 60_000  # no unit of work waits longer than this for a lock, whatever time it has left
MIN_STATEMENT_MS = 1_000  # a unit of work with less time than this left does not start


@dataclasses.dataclass(frozen=True)
class Budget:
    """The time a Lambda invocation has left for its database work: every unit of work on a connection with a
    budget sets ``statement_timeout`` (the time left minus ``margin_ms``) and ``lock_timeout`` (at most
    :data:`MAX_LOCK_WAIT_MS`) for itself, so PostgreSQL gives up, and rolls back, before Lambda kills the
    function."""

    remaining_ms: Callable[[], int]
    margin_ms: int

    def statement_ms(self) -> int:
        left = self.remaining_ms()
        budget = left - self.margin_ms
        if budget < MIN_STATEMENT_MS:
            raise TransientError(f"only {left} ms left in this invocation, not enough for its database work")
        return budget


Connection = psycopg2.extensions.connection


@dataclasses.dataclass
class _UnitState:
    budget: Budget | None = None
    depth: int = 0  # units of work open on the connection (see write/read)


_units: weakref.WeakKeyDictionary[Connection, _UnitState] = weakref.WeakKeyDictionary()
_units_lock = threading.Lock()


def _state(conn: Connection) -> _UnitState:
    with _units_lock:
        state = _units.get(conn)
        if state is None:
            state = _units[conn] = _UnitState()
        return state


def budget_of(conn: Connection) -> Budget | None:
    """The time budget every unit of work on ``conn`` runs under (None: no limit set here)."""
    return _state(conn).budget


def set_budget(conn: Connection, budget: Budget | None) -> Budget | None:
    """Give ``conn`` a time budget (the Lambda invocation's); returns the one it had."""
    state = _state(conn)
    previous, state.budget = state.budget, budget
    return previous


@cache
def load_sql(name: str) -> str:
    """The text of ``sql/<name>.sql`` (one statement per file, bound parameters only)."""
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise ConfigError(f"SQL file not found: {path}")
    return path.read_text()


def connect(dsn: str, application_name: str = "conflict-map") -> Connection:
    """Open a connection. A malformed connection string is a :class:`ConfigError` in one line that never shows
    the password; a failure to connect is transient (the database may be restarting)."""
    check_dsn(dsn)
    try:
        conn = psycopg2.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, application_name=application_name)
    except psycopg2.OperationalError as exc:
        raise TransientError(f"cannot connect to the database: {redact(describe_db_error(exc), dsn)}") from exc
    except psycopg2.Error as exc:
        raise ConfigError(f"invalid database connection string: {redact(describe_db_error(exc), dsn, quoted=True)}") \
            from exc
    return conn


_URL_PASSWORD = re.compile(r"^[a-z]+://[^@/?#]*?:([^@]*)@", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact(text: str, dsn: str, *, quoted: bool = False) -> str:
    """``text`` without the connection string's password; with ``quoted``, without any quoted fragment either
    (libpq echoes the malformed part of a connection string, which may hold the password, partly encoded)."""
    secrets_found = [m.group(1) for m in (_URL_PASSWORD.search(dsn), _KEYWORD_PASSWORD.search(dsn)) if m]
    for secret in sorted(filter(None, secrets_found), key=len, reverse=True):
        text = text.replace(secret, "***")
    return re.sub(r'"[^"]*"', '"…"', text) if quoted else text


def check_dsn(dsn: str) -> None:
    """A connection string is a ``postgresql://`` (or ``postgres://``) URL or libpq ``key=value`` pairs."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", dsn, re.IGNORECASE):
        if not re.match(r"^postgres(ql)?://", dsn, re.IGNORECASE):
            raise ConfigError("invalid database connection string: the URL scheme must be postgresql:// "
                              "(or postgres://)")
    elif "=" not in dsn:
        raise ConfigError("invalid database connection string: expected postgresql://user@host:port/dbname "
                          "or key=value pairs")
    try:
        parsed = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.Error as exc:
        reason = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, dsn,
                        quoted=True)
        raise ConfigError(f"invalid database connection string: {reason}") from None
    ports = [p.strip() for p in str(parsed.get("port") or "").split(",") if p.strip()]
    if not all(p.isdigit() for p in ports):  # its value is not shown: in a URL it may be part of the password
        raise ConfigError("invalid database connection string: the port is not a number (in a URL, a password "
                          "with / @ : ? # or % must be percent-encoded, e.g. / as %2F)")


@contextlib.contextmanager
def classified(*, timed_out: Callable[[], bool] | None = None) -> Iterator[None]:
    """The database boundary: a psycopg2 error raised inside becomes :class:`TransientError` or
    :class:`PermanentError` by its SQLSTATE (``timed_out`` says whether the caller's time limit was hit)."""
    try:
        yield
    except psycopg2.Error as exc:
        raise classify_db_error(exc, timed_out=bool(timed_out and timed_out())) from exc


def fetch_all(conn: Connection, name: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run ``sql/<name>.sql`` and return its rows as dicts (an X-Ray subsegment in Lambda)."""
    with subsegment(f"sql {name}", statement=name), classified(), \
            conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(load_sql(name), params or {})
        return [dict(row) for row in cur.fetchall()] if cur.description else []


def fetch_one(conn: Connection, name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    rows = fetch_all(conn, name, params)
    return rows[0] if rows else None


def execute(conn: Connection, name: str, params: Mapping[str, Any] | None = None) -> int:
    """Run ``sql/<name>.sql`` for its effect; returns the affected row count."""
    with subsegment(f"sql {name}", statement=name), classified(), conn.cursor() as cur:
        cur.execute(load_sql(name), params or {})
        return cur.rowcount


def set_local(conn: Connection, **values: str) -> None:
    """``SET LOCAL`` through ``set_config(..., true)``: bound values, scoped to the transaction, so an RDS
    Proxy does not pin the connection the way a session-level ``SET`` would."""
    if not values:
        return
    calls = ", ".join(["set_config(%s, %s, true)"] * len(values))  # one round trip for all of them
    with classified(), conn.cursor() as cur:
        cur.execute(f"SELECT {calls}", [x for pair in values.items() for x in pair])


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
        except psycopg2.Error:
            return False
        return True

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg2.Error):
                conn.close()


def _begin(conn: Connection, first: Callable[[Connection], None] | None) -> bool:
    """Start a unit of work: a transaction, with the connection's time budget applied to it (after ``first``, the
    statement that must open the transaction, e.g. ``SET TRANSACTION ISOLATION LEVEL``). Returns False when the
    block joins a unit of work already open on the connection (the outer one ends it)."""
    state = _state(conn)
    if state.depth:
        if first is not None:
            raise RuntimeError("a unit of work that must open its transaction began inside another one")
        state.depth += 1
        return False
    state.depth = 1
    try:
        if first is not None:
            first(conn)
        if state.budget is not None:
            timeout = state.budget.statement_ms()
            set_local(conn, statement_timeout=str(timeout), lock_timeout=str(min(timeout, MAX_LOCK_WAIT_MS)))
    except BaseException:
        state.depth = 0
        with contextlib.suppress(psycopg2.Error):
            conn.rollback()
        raise
    return True


def _end(conn: Connection, *, outer: bool, commit: bool) -> None:
    state = _state(conn)
    state.depth = max(0, state.depth - 1)
    if not outer or conn.closed:
        return
    if commit:
        with classified():
            conn.commit()
    else:
        with contextlib.suppress(psycopg2.Error):
            conn.rollback()


@contextlib.contextmanager
def write(conn: Connection, *, first: Callable[[Connection], None] | None = None) -> Iterator[Connection]:
    """A unit of work that writes: commits on success, rolls back on any error. ``first`` runs before anything else
    in its transaction (an isolation level). A block inside another joins it."""
    outer = _begin(conn, first)
    try:
        yield conn
    except BaseException:
        _end(conn, outer=outer, commit=False)
        raise
    _end(conn, outer=outer, commit=True)


@contextlib.contextmanager
def read(conn: Connection, *, snapshot: bool = False, imported: str | None = None) -> Iterator[Connection]:
    """A unit of work that only reads: its transaction always ends (rolled back), so no snapshot or lock is
    held after it. With ``snapshot``, every statement inside sees one snapshot (REPEATABLE READ, READ ONLY);
    with ``imported``, the snapshot another session exported (``pg_export_snapshot()``, while its transaction is
    open). Inside a writing unit of work it joins that one."""
    if imported is not None:
        outer = _begin(conn, lambda c: _imported_snapshot(c, imported))
    else:
        outer = _begin(conn, _read_only_snapshot if snapshot else None)
    try:
        yield conn
    finally:
        _end(conn, outer=outer, commit=False)


transaction = write  # the name the first round used


def _read_only_snapshot(conn: Connection) -> None:
    with classified(), conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


def _imported_snapshot(conn: Connection, snapshot_id: str) -> None:
    with classified(), conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot_id,))


@contextlib.contextmanager
def autocommit(conn: Connection) -> Iterator[Connection]:
    """Statements that must not run in a transaction block (VACUUM, CREATE DATABASE), each on its own."""
    old = conn.autocommit
    conn.autocommit = True
    try:
        yield conn
    finally:
        if not conn.closed:
            conn.autocommit = old


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
    # keyword form, each value quoted by libpq's rules: a password may hold any character (/, @, spaces, quotes)
    return psycopg2.extensions.make_dsn(host=str(host), port=str(port), dbname=str(dbname), user=str(user),
                                        password=str(password))


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
        with write(conn), classified(), conn.cursor() as cur:
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
    with read(conn), classified(), conn.cursor() as cur:
        cur.execute("SELECT to_regclass('etl.schema_migrations') IS NOT NULL")
        row = cur.fetchone()
        if not row or not row[0]:
            return None
        cur.execute("SELECT max(version) FROM etl.schema_migrations")
        version = cur.fetchone()
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
    if sys.version_info >= (3, 13):  # pgserver has no wheel for 3.13 yet (pyproject marks it < 3.13)
        raise ConfigError("no database given and the embedded PostgreSQL is not available on Python "
                          f"{sys.version_info.major}.{sys.version_info.minor}: give DATABASE_URL (or --database-url), "
                          "or use Python <= 3.12")
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - the local extra is installed by `make install`
        raise ConfigError("no database given (--database-url or DATABASE_URL) and the embedded "
                          "PostgreSQL is not installed: run `make install`") from exc
    data_dir = Path(os.environ.get("ETL_DATA_DIR", data_dir or DEFAULT_DATA_DIR))
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")  # type: ignore[attr-defined, unused-ignore]
    _embedded_servers.append(server)  # keep a reference: the server lives as long as this process
    return str(server.get_uri())


_embedded_servers: list[Any] = []


def resolve_database_url(explicit: str | None, env: Mapping[str, str] | None = None) -> str:
    """``--database-url``, else ``DATABASE_URL``, else an embedded PostgreSQL in the project."""
    env = os.environ if env is None else env
    return explicit or env.get("DATABASE_URL") or embedded_database_url()
