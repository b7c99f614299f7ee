"""The SQL against an independent Python implementation of the rules, on a generated population."""

from __future__ import annotations

from datetime import date

import pytest

from chunking import seed
from tests import oracle
from tests.factories import rejected, run_window


@pytest.mark.parametrize(("chunk_days", "seed_value"), [(1, 11), (3, 12), (366, 13)])
def test_conflict_map_matches_the_oracle(conn, chunk_days, seed_value):
    # given ~4,000 generated visits over 8 days, and a window that leaves days out on both sides
    seed.seed_visits(conn, visits=4_000, start=date(2026, 10, 1), days=8, seed=seed_value)
    start, end = date(2026, 10, 2), date(2026, 10, 6)
    # when the window runs
    run_window(conn, start.isoformat(), end.isoformat(), chunk_days=chunk_days)
    # then the ACTIVE conflicts dated in the window and the rejected visits are exactly the oracle's
    want, want_rejected = oracle.expected(oracle.load_visits(conn), start, end)
    got = oracle.actual(conn, start, end)
    assert len(want) > 100, "the generated population should hold conflicts"
    assert {k for k, v in want.items() if v[2] == "TRAVEL"} and {k for k, v in want.items() if v[2] == "OVERLAP"}
    assert got.keys() == want.keys()
    mismatched = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    assert mismatched == {}
    assert rejected(conn) == want_rejected
