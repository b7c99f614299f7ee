-- Reopen a FAILED run for a redrive under a new execution (refused by the unique index if another is active).
UPDATE etl.runs
   SET status = 'RUNNING', executor = %(executor)s, redrives = redrives + 1, finished_at = NULL, error = NULL,
       heartbeat_at = now()
 WHERE run_id = %(run_id)s AND status = 'FAILED'
RETURNING *;
