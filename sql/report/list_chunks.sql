-- The chunks of a run in date order, with their counts and times.
SELECT chunk_id, chunk_start, chunk_end, status, attempts, visits, inserted, updated, resolved, reopened,
       unchanged, queued_at, started_at, finished_at, duration_ms, last_error, owned_days
  FROM etl.chunks
 WHERE run_id = %(run_id)s
 ORDER BY chunk_start, chunk_id;
