-- Record Task 01's counts on the run.
UPDATE etl.runs
   SET staged_at = now(), heartbeat_at = now(), staged_rows = %(staged_rows)s
 WHERE run_id = %(run_id)s;
