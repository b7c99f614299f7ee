-- Every attempt of every chunk of a run, in the order they started.
SELECT chunk_id, attempt, worker, started_at, finished_at, outcome, error_type, error
  FROM etl.chunk_attempts
 WHERE run_id = %(run_id)s
 ORDER BY started_at, chunk_id, attempt;
