-- After Task 01 loaded a run: build its partition's primary key and indexes once (schema 004).
SELECT etl.index_staged_partition(%(run_id)s);
