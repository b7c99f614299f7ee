-- The chunks of a run that have not succeeded (what a redrive re-processes).
SELECT * FROM etl.chunks
 WHERE run_id = %(run_id)s AND status NOT IN ('SUCCEEDED', 'SUPERSEDED')
 ORDER BY chunk_start, chunk_id;
