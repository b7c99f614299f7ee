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


class TransientError(EtlError):
    """Worth retrying: a lost connection, a timeout, a deadlock, throttling, an injected fault drill."""


class PermanentError(EtlError):
    """Retrying cannot help: a malformed message, an unknown run, an error in the SQL itself."""


# SQLSTATE classes and codes that a retry can cure.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57", "40")  # connection, resources, operator/cancel, rollback
_TRANSIENT_SQLSTATES = {"55P03"}  # lock_not_available (lock_timeout)


def is_transient_db_error(exc: BaseException) -> bool:
    """True when a database error is worth retrying (connection lost, timeout, deadlock, ...)."""
    if isinstance(exc, psycopg2.InterfaceError):
        return True  # the connection was closed under us
    if isinstance(exc, psycopg2.Error):
        code = exc.pgcode
        if code is None:
            return isinstance(exc, psycopg2.OperationalError)
        return code.startswith(_TRANSIENT_SQLSTATE_PREFIXES) or code in _TRANSIENT_SQLSTATES
    return False


def describe_db_error(exc: BaseException) -> str:
    """One line naming a database error: its SQLSTATE name when it has one, and its first message line."""
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, psycopg2.Error) and exc.pgcode:
        name = type(exc).__name__ if type(exc) is not psycopg2.Error else exc.pgcode
        return f"{name}: {first_line}"
    return f"{type(exc).__name__}: {first_line}"


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
    """Map a database error to the pipeline's retry classes (other pipeline errors pass through)."""
    if isinstance(exc, EtlError):
        return exc
    if is_transient_db_error(exc):
        return TransientError(describe_db_error(exc))
    if isinstance(exc, psycopg2.Error):
        return PermanentError(describe_db_error(exc))
    return PermanentError(f"{type(exc).__name__}: {exc}")


__all__ = [
    "ConfigError",
    "EtlError",
    "InputError",
    "PermanentError",
    "RunAlreadyActive",
    "TransientError",
    "as_pipeline_error",
    "describe_db_error",
    "is_transient_db_error",
    "step_error_message",
]
