-- Replace a chunk that ran out of time by smaller ones; returns nothing when it has succeeded meanwhile.
UPDATE etl.chunks SET status = 'SUPERSEDED', finished_at = now()
 WHERE run_id = %(run_id)s AND chunk_id = %(chunk_id)s AND status NOT IN ('SUCCEEDED', 'SUPERSEDED')
RETURNING chunk_id;
