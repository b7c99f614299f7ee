-- ACTIVE conflicts dated in a run's window that no SUCCEEDED chunk of the run owns (must be none). A stale run
-- owns only the days it selected (etl.run_days): only those are read (the other branch is skipped at run time,
-- instead of testing every ACTIVE conflict of the window against the run's days: 80 ms at 60k conflicts).
WITH run AS (
    SELECT r.stale FROM etl.runs r WHERE r.run_id = %(run_id)s
),
dated AS (
    SELECT m.conflict_date
    FROM conflict.conflict_visit_maps m
    WHERE NOT (SELECT stale FROM run)
      AND m.status = 'ACTIVE'
      AND m.conflict_date BETWEEN %(window_start)s AND %(window_end)s
    UNION ALL
    SELECT m.conflict_date
    FROM etl.run_days d
    JOIN conflict.conflict_visit_maps m ON m.status = 'ACTIVE' AND m.conflict_date = d.day
    WHERE (SELECT stale FROM run)
      AND d.run_id = %(run_id)s
      AND d.day BETWEEN %(window_start)s AND %(window_end)s
)
SELECT count(*) AS unowned
FROM dated m
WHERE NOT EXISTS (SELECT 1 FROM etl.chunks c
                  WHERE c.run_id = %(run_id)s AND c.status = 'SUCCEEDED'
                    AND m.conflict_date BETWEEN c.chunk_start AND c.chunk_end
                    AND (c.owned_days IS NULL OR m.conflict_date = ANY(c.owned_days)));
