-- Record a failed attempt: RETRYING while deliveries remain, FAILED when the chunk has given up; with the
-- error's SQLSTATE (when the database raised it) and whether the database cancelled it at its time limit.
WITH attempt AS (
    UPDATE etl.chunk_attempts
       SET finished_at = clock_timestamp(), outcome = 'FAILED', error_type = %(error_type)s, error = %(error)s,
           error_code = %(error_code)s, timed_out = %(timed_out)s
     WHERE run_id = %(run_id)s AND chunk_id = %(chunk_id)s AND attempt = %(attempt)s
)
UPDATE etl.chunks
   SET status = %(status)s, error_type = %(error_type)s, last_error = %(error)s, error_code = %(error_code)s,
       timed_out = %(timed_out)s, finished_at = clock_timestamp()
 WHERE run_id = %(run_id)s AND chunk_id = %(chunk_id)s AND status NOT IN ('SUCCEEDED', 'SUPERSEDED');
