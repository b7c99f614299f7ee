-- Mark a chunk SUCCEEDED with its counts, in the same transaction as its changes to the output.
WITH attempt AS (
    UPDATE etl.chunk_attempts SET finished_at = clock_timestamp(), outcome = 'SUCCEEDED'
     WHERE run_id = %(run_id)s AND chunk_id = %(chunk_id)s AND attempt = %(attempt)s
)
UPDATE etl.chunks
   SET status = 'SUCCEEDED', visits = %(visits)s, inserted = %(inserted)s, updated = %(updated)s,
       resolved = %(resolved)s, reopened = %(reopened)s, unchanged = %(unchanged)s,
       finished_at = clock_timestamp(), duration_ms = %(duration_ms)s, error_type = NULL, last_error = NULL
 WHERE run_id = %(run_id)s AND chunk_id = %(chunk_id)s;
