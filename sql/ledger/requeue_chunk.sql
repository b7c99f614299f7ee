-- Put a failed chunk back in the queue for a redrive; its attempts and last error are kept.
UPDATE etl.chunks SET status = 'PENDING', queued_at = now()
 WHERE run_id = %(run_id)s AND chunk_id = %(chunk_id)s AND status NOT IN ('SUCCEEDED', 'SUPERSEDED');
