-- Mark a dead run ABANDONED and its unfinished chunks FAILED, so a new run can start.
WITH chunks AS (
    UPDATE etl.chunks
       SET status = 'FAILED', error_type = 'Abandoned', last_error = %(reason)s, finished_at = now()
     WHERE run_id = %(run_id)s AND status IN ('PENDING', 'RUNNING', 'RETRYING')
    RETURNING 1
)
UPDATE etl.runs
   SET status = 'ABANDONED', error = %(reason)s, finished_at = now()
 WHERE run_id = %(run_id)s AND status IN ('RUNNING', 'FAILED', 'STOPPED')
RETURNING *, (SELECT count(*) FROM chunks) AS chunks_abandoned;
