-- ACTIVE conflicts dated in a run's window that no SUCCEEDED chunk of the run owns (must be none). A stale run
-- owns only the days it selected (etl.run_days).
SELECT count(*) AS unowned
FROM conflict.conflict_visit_maps m
WHERE m.status = 'ACTIVE'
  AND m.conflict_date BETWEEN %(window_start)s AND %(window_end)s
  AND (NOT EXISTS (SELECT 1 FROM etl.runs r WHERE r.run_id = %(run_id)s AND r.stale)
       OR EXISTS (SELECT 1 FROM etl.run_days d WHERE d.run_id = %(run_id)s AND d.day = m.conflict_date))
  AND NOT EXISTS (SELECT 1 FROM etl.chunks c
                  WHERE c.run_id = %(run_id)s AND c.status = 'SUCCEEDED'
                    AND m.conflict_date BETWEEN c.chunk_start AND c.chunk_end);
