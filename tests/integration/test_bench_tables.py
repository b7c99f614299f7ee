"""The benchmarks empty the ledger between measurements with one TRUNCATE of a fixed list of tables: a table that
references etl.runs and is missing from it makes that TRUNCATE fail (as etl.source_snapshots did when schema 13
added it)."""

from bench.run_bench import EMPTIED


def test_the_benchmarks_empty_every_table_that_references_the_runs(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT conrelid::regclass::text FROM pg_constraint "
                    "WHERE contype = 'f' AND confrelid = 'etl.runs'::regclass")
        referencing = {r[0] for r in cur.fetchall()}
    conn.rollback()
    assert referencing and referencing <= set(EMPTIED)
