-- Close a run with its outcome, the sums of its chunks' counts and its window's rejected visits; only the
-- execution that drives the run may. A FAILED run's unfinished chunks are marked FAILED (a worker that gave up
-- during an outage may not have recorded it), so a redrive takes them.
WITH unfinished AS (
    UPDATE etl.chunks c
       SET status = 'FAILED', error_type = 'RunClosed', finished_at = now(),
           last_error = coalesce(c.last_error, 'not finished when the run was reconciled')
     WHERE %(status)s = 'FAILED' AND c.run_id = %(run_id)s AND c.status IN ('PENDING', 'RUNNING', 'RETRYING')
       AND EXISTS (SELECT 1 FROM etl.runs r WHERE r.run_id = %(run_id)s AND r.status = 'RUNNING'
                                             AND (%(driver)s::text IS NULL OR r.driver = %(driver)s))
    RETURNING 1
)
UPDATE etl.runs r
   SET status = %(status)s, error = %(error)s, finished_at = now(), heartbeat_at = now(),
       chunks_planned = s.chunks, visits = s.visits, inserted = s.inserted, updated = s.updated,
       resolved = s.resolved, reopened = s.reopened, unchanged = s.unchanged,
       rejected_rows = (SELECT count(*) FROM conflict.rejected_visits v
                         WHERE v.visit_date BETWEEN r.window_start AND r.window_end),
       invalid_rows = (SELECT count(*) FROM conflict.rejected_visits v
                        WHERE v.visit_date BETWEEN r.window_start AND r.window_end AND v.reason = 'INVALID_RECORD')
  FROM (SELECT count(*) AS chunks,
               coalesce(sum(visits), 0) AS visits, coalesce(sum(inserted), 0) AS inserted,
               coalesce(sum(updated), 0) AS updated, coalesce(sum(resolved), 0) AS resolved,
               coalesce(sum(reopened), 0) AS reopened, coalesce(sum(unchanged), 0) AS unchanged
          FROM etl.chunks
         WHERE run_id = %(run_id)s AND status <> 'SUPERSEDED') s
 WHERE r.run_id = %(run_id)s AND r.status = 'RUNNING' AND (%(driver)s::text IS NULL OR r.driver = %(driver)s)
RETURNING r.*, (SELECT count(*) FROM unfinished) AS chunks_closed;
