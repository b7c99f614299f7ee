-- Version 2: adaptive chunk sizing. A run records how its plan was sized (fixed rows, or from measured
-- throughput); chunks record their estimated duration; a chunk split after a timeout names its parent.
ALTER TABLE etl.runs ALTER COLUMN max_chunk_rows DROP NOT NULL;
ALTER TABLE etl.runs ADD COLUMN sizing jsonb;
ALTER TABLE etl.chunks ADD COLUMN estimated_ms bigint;
ALTER TABLE etl.chunks ADD COLUMN split_from integer;
