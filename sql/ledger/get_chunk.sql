-- One chunk of a run.
SELECT * FROM etl.chunks WHERE run_id = %(run_id)s AND chunk_id = %(chunk_id)s;
