-- Record one planned chunk of a run.
INSERT INTO etl.chunks (run_id, chunk_id, chunk_start, chunk_end, status, estimated_rows, queued_at)
VALUES (%(run_id)s, %(chunk_id)s, %(chunk_start)s, %(chunk_end)s, 'PENDING', %(estimated_rows)s, now());
