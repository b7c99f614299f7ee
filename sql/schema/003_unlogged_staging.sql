-- Version 3: the staging table is UNLOGGED. Task 01 then writes no WAL for the rows it stages (about a quarter
-- of its time at 650k visits; docs/benchmarks.md). Staged rows are a copy the pipeline rebuilds at will, but an
-- unlogged table is emptied by crash recovery and is empty on a promoted standby (failover), so a run's staging
-- can vanish under it: Task 02 compares the staged rows of its chunk with the count its plan recorded
-- (etl.chunks.estimated_rows) and fails, writing nothing, when they differ, instead of resolving every
-- conflict of its dates. A redrive restages the failed chunks.
ALTER TABLE etl.staged_visits SET UNLOGGED;
