-- A delivery found its chunk already applied: it changed nothing.
UPDATE etl.chunk_attempts SET finished_at = clock_timestamp(), outcome = 'DUPLICATE'
 WHERE run_id = %(run_id)s AND chunk_id = %(chunk_id)s AND attempt = %(attempt)s;
