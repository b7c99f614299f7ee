"""Fault drills: make chosen chunks fail on purpose, to rehearse failures and redrives (SPEC: ETL_FAULT_CHUNKS).

Kept out of the worker's core: the worker takes an optional ``before_commit`` check, and this module builds one
from the settings, locally and in a dev stack only. A prod stack cannot switch it on: the template passes
ETL_FAULT_CHUNKS to dev stacks only, and settings refuse it where ETL_ENVIRONMENT is prod."""

from __future__ import annotations

from collections.abc import Callable

from chunking.errors import TransientError
from chunking.settings import Settings
from chunking.tasks import ChunkResult


def fault_drill(settings: Settings) -> Callable[[ChunkResult], None] | None:
    """A check that fails every attempt of the chunks starting on ``ETL_FAULT_CHUNKS`` dates, after the chunk's
    statement ran and before it commits (so it rolls back), or None when no drill is set."""
    dates = settings.fault_chunks
    if not dates:
        return None

    def fail_chosen_chunks(result: ChunkResult) -> None:
        if result.chunk_start in dates:
            raise TransientError(f"fault drill: ETL_FAULT_CHUNKS fails every attempt of the chunk starting "
                                 f"{result.chunk_start} (rolled back before commit)")

    return fail_chosen_chunks
