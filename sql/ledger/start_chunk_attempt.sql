-- Count a delivery that is about to work on a chunk (committed on its own, so failed attempts count too).
WITH chunk AS (
    UPDATE etl.chunks
       SET attempts = attempts + 1, status = 'RUNNING', started_at = coalesce(started_at, now()),
           finished_at = NULL
     WHERE run_id = %(run_id)s AND chunk_id = %(chunk_id)s AND status NOT IN ('SUCCEEDED', 'SUPERSEDED')
    RETURNING run_id, chunk_id, attempts
)
INSERT INTO etl.chunk_attempts (run_id, chunk_id, attempt, worker)
SELECT run_id, chunk_id, attempts, %(worker)s FROM chunk
RETURNING attempt;
