-- Version 15: the days a chunk computes, when they are not every day of its range. A stale run plans only the days
-- it selected, and one chunk may hold selected days with unselected ones between them (planner.plan_chunks): so that
-- a run whose edits are spread over the horizon fills as many chunks as run at once instead of one per stretch of
-- adjacent days. Its range is its first to its last day; owned_days lists them all, in order. NULL: every day of the
-- range (a plain run's chunks, and every chunk recorded before this version). Task 02, the days it marks computed, the
-- reconciliation's ownership check and the plan preview's coverage all read it (docs/architecture.md).
ALTER TABLE etl.chunks ADD COLUMN owned_days date[];
ALTER TABLE etl.chunks ADD CONSTRAINT chunks_owned_days_in_range CHECK (
    owned_days IS NULL
    OR (cardinality(owned_days) >= 1 AND owned_days[1] = chunk_start
        AND owned_days[cardinality(owned_days)] = chunk_end));
