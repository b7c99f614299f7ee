-- Close a RUNNING run that will not reach reconciliation (a step failed for good, a signal stopped its driver,
-- its driver is gone) with a reason, and fail its unfinished chunks, so that a redrive takes them. Only the
-- run's current driver may close it, unless %(driver)s is NULL (a driver proven dead, or the driver itself
-- stopping).
WITH run AS (
    UPDATE etl.runs
       SET status = %(status)s, error = %(reason)s, finished_at = now(), heartbeat_at = now(),
           chunks_planned = (SELECT count(*) FROM etl.chunks c
                              WHERE c.run_id = %(run_id)s AND c.status <> 'SUPERSEDED')
     WHERE run_id = %(run_id)s AND status = 'RUNNING'
       AND (%(driver)s::text IS NULL OR driver = %(driver)s)
    RETURNING *
), chunks AS (
    UPDATE etl.chunks c
       SET status = 'FAILED', error_type = 'RunClosed', last_error = %(reason)s, finished_at = now()
      FROM run
     WHERE c.run_id = run.run_id AND c.status IN ('PENDING', 'RUNNING', 'RETRYING')
    RETURNING 1
)
SELECT run.*, (SELECT count(*) FROM chunks) AS chunks_closed FROM run;
