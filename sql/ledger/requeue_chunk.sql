-- Put a failed chunk back in the queue for a redrive, with its fresh estimate; its attempts and last error
-- are kept. Returns nothing when the chunk has succeeded meanwhile (a late delivery committed it).
UPDATE etl.chunks SET status = 'PENDING', queued_at = now(), estimated_rows = %(estimated_rows)s,
                      estimated_ms = %(estimated_ms)s
 WHERE run_id = %(run_id)s AND chunk_id = %(chunk_id)s AND status NOT IN ('SUCCEEDED', 'SUPERSEDED')
RETURNING chunk_id;
