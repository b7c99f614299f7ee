"""Error classes: what is retried, what fails at once, and what the user is told.

Lambda reports an exception's class name as its ``errorType``; the state machine's Retry and Catch match
on those names, so the two retry classes are concrete classes (``TransientError``, ``PermanentError``)
with the cause in the message, not a family of subclasses.
"""

from __future__ import annotations

import json

import psycopg2


class EtlError(Exception):
    """Base of every error the pipeline raises on purpose."""


class ConfigError(EtlError):
    """A setting is missing or invalid."""


class InputError(EtlError):
    """Bad user input: a malformed date, an inverted or oversized window, an unknown run."""


class RunAlreadyActive(EtlError):
    """Another run is active; at most one runs at a time."""


class _Classified(EtlError):
    """An error with what the database said of it, when it came from the database: its SQLSTATE ``code`` and
    whether the database cancelled the work at its time limit (``timed_out``, set by the caller that knows the
    limit it set: PostgreSQL reports a statement timeout and a cancel request with the same SQLSTATE)."""

    def __init__(self, message: str, *, code: str | None = None, timed_out: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.timed_out = timed_out


class TransientError(_Classified):
    """Worth retrying: a lost connection, a timeout, a deadlock, throttling, an injected fault drill."""


class PermanentError(_Classified):
    """Retrying cannot help: a malformed message, an unknown run, an error in the SQL itself."""


# SQLSTATEs that a retry can cure, by class (two characters) or by code. Decided by code, never by message text
# (the server's messages follow its lc_messages).
TRANSIENT_SQLSTATE_CLASSES = frozenset({
    "08",  # connection exception: lost, refused, failed
    "53",  # insufficient resources: too many connections (53300), out of memory, disk full
    "40",  # transaction rollback: serialization failure (40001), deadlock (40P01)
})
TRANSIENT_SQLSTATES = frozenset({
    "57P01",  # admin_shutdown: the server is shutting down or restarting
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now: the server is starting up or in recovery
    "57P05",  # idle_session_timeout
    "57014",  # query_canceled: statement_timeout, or a cancel request
    "55P03",  # lock_not_available: lock_timeout
    "25P03",  # idle_in_transaction_session_timeout
    "58000",  # system_error
    "58030",  # io_error
})
QUERY_CANCELED = "57014"


def is_transient_db_error(exc: BaseException) -> bool:
    """True when a database error is worth retrying (connection lost, timeout, deadlock, ...)."""
    if isinstance(exc, psycopg2.InterfaceError):
        return True  # the connection was closed under us
    if isinstance(exc, psycopg2.Error):
        code = exc.pgcode
        if code is None:  # libpq's own errors: the server closed the connection, cannot connect, ...
            return isinstance(exc, psycopg2.OperationalError)
        return code[:2] in TRANSIENT_SQLSTATE_CLASSES or code in TRANSIENT_SQLSTATES
    return False


def describe_db_error(exc: BaseException) -> str:
    """One line naming a database error: its SQLSTATE name when it has one, and its first message line."""
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, psycopg2.Error) and exc.pgcode:
        name = type(exc).__name__ if type(exc) is not psycopg2.Error else exc.pgcode
        return f"{name}: {first_line}"
    return f"{type(exc).__name__}: {first_line}"


def classify_db_error(exc: psycopg2.Error, *, timed_out: bool = False) -> TransientError | PermanentError:
    """The database boundary's one classification: a psycopg2 error becomes the pipeline's retry class, carrying
    its SQLSTATE. Every statement the pipeline runs goes through it (:func:`chunking.db.classified`)."""
    kind = TransientError if is_transient_db_error(exc) else PermanentError
    return kind(describe_db_error(exc), code=exc.pgcode, timed_out=timed_out)


def step_error_message(error: str | None, cause: str | None) -> str:
    """A Step Functions error and cause as one readable line: a Lambda's cause is JSON carrying its
    errorType and errorMessage; other causes are plain text."""
    name = error or "Error"
    try:
        parsed = json.loads(cause) if cause else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "errorMessage" in parsed:
        return f"{parsed.get('errorType', name)}: {parsed['errorMessage']}"
    return f"{name}: {cause}" if cause else name


def as_pipeline_error(exc: BaseException) -> EtlError:
    """Map any error to the pipeline's classes: pipeline errors pass through, database errors are classified by
    SQLSTATE, anything else (a bug) is permanent and says its type (callers log those with their traceback:
    :func:`is_unexpected`)."""
    if isinstance(exc, EtlError):
        return exc
    if isinstance(exc, psycopg2.Error):
        return classify_db_error(exc)
    return PermanentError(f"{type(exc).__name__}: {exc}")


def is_unexpected(exc: BaseException) -> bool:
    """An error no part of the pipeline raises on purpose (a bug, not a classified failure)."""
    return not isinstance(exc, EtlError | psycopg2.Error)


__all__ = [
    "ConfigError",
    "EtlError",
    "InputError",
    "PermanentError",
    "RunAlreadyActive",
    "TransientError",
    "as_pipeline_error",
    "classify_db_error",
    "describe_db_error",
    "is_transient_db_error",
    "is_unexpected",
    "step_error_message",
]
