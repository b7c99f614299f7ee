-- Close a run with its outcome, the sums of its chunks' counts and its window's rejected visits.
UPDATE etl.runs r
   SET status = %(status)s, error = %(error)s, finished_at = now(), heartbeat_at = now(),
       chunks_planned = s.chunks, visits = s.visits, inserted = s.inserted, updated = s.updated,
       resolved = s.resolved, reopened = s.reopened, unchanged = s.unchanged,
       rejected_rows = (SELECT count(*) FROM conflict.rejected_visits v
                         WHERE v.visit_date BETWEEN r.window_start AND r.window_end)
  FROM (SELECT count(*) AS chunks,
               coalesce(sum(visits), 0) AS visits, coalesce(sum(inserted), 0) AS inserted,
               coalesce(sum(updated), 0) AS updated, coalesce(sum(resolved), 0) AS resolved,
               coalesce(sum(reopened), 0) AS reopened, coalesce(sum(unchanged), 0) AS unchanged
          FROM etl.chunks
         WHERE run_id = %(run_id)s AND status <> 'SUPERSEDED') s
 WHERE r.run_id = %(run_id)s AND r.status = 'RUNNING'
RETURNING r.*;
