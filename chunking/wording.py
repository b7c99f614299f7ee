"""Counts as people write them, for every message the terminal and the report show: "1 day", "3 days",
"12,004 visits" (never "1 days" or "day(s)"). No imports, so the handlers' modules can use it too."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and its noun, singular for exactly one: ``counted(1, "chunk")`` is "1 chunk", ``counted(2, "chunk")``
    "2 chunks"; an irregular plural is given (``counted(n, "attempt to", "attempts to")``)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
