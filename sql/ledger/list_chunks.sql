-- The chunks of a run, in date order.
SELECT * FROM etl.chunks WHERE run_id = %(run_id)s ORDER BY chunk_start, chunk_id;
