"""The visual run report: one self-contained HTML page about one run (inline CSS and SVG, no script, nothing
fetched), for the operator who wants to see at a glance what ran, how long each part took, what failed, why,
and what to type next.

:func:`gather` reads the ledger and the output tables in one read-only snapshot into typed data
(:mod:`.model`); :func:`render` is a pure function from that data to the page: :mod:`.geometry` lays the
charts out, Jinja2 templates with autoescape draw them (:mod:`.page`). :func:`render_freshness` draws the
per-day freshness calendar, alone or inside a run's page."""

from chunking.report.geometry import VARIANTS, TimeAxis
from chunking.report.model import (
    Attempt,
    Chunk,
    ConflictDay,
    Execution,
    FreshnessDay,
    Rejection,
    ReportData,
    Run,
    Totals,
    gather,
)
from chunking.report.page import RecomputedDay, next_step, render, render_freshness

__all__ = ["VARIANTS", "Attempt", "Chunk", "ConflictDay", "Execution", "FreshnessDay", "RecomputedDay",
           "Rejection", "ReportData", "Run", "TimeAxis", "Totals", "gather", "next_step", "render", "render_freshness"]
