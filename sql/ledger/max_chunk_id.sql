-- The largest chunk id of a run (new chunks of a split are numbered after it).
SELECT coalesce(max(chunk_id), 0) AS max_chunk_id FROM etl.chunks WHERE run_id = %(run_id)s;
