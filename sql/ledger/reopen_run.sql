-- Reopen a FAILED or STOPPED run for a redrive under a new execution, which becomes its driver. One statement:
-- of two redrives at once, one reopens the run and the other finds it RUNNING (and is refused, naming the
-- driver); the unique index refuses it if another run is active.
UPDATE etl.runs
   SET status = 'RUNNING', executor = %(executor)s, driver = %(driver)s, redrives = redrives + 1,
       finished_at = NULL, error = NULL, heartbeat_at = now(),
       max_concurrency = coalesce(%(max_concurrency)s, max_concurrency)
 WHERE run_id = %(run_id)s AND status IN ('FAILED', 'STOPPED')
RETURNING *;
