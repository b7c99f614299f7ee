-- Lock a chunk's ledger row for the chunk's transaction: a duplicate delivery waits here, then sees SUCCEEDED.
SELECT * FROM etl.chunks
 WHERE run_id = %(run_id)s AND chunk_id = %(chunk_id)s
   FOR UPDATE;
