-- Staged owner rows per service date of a window, the load the chunk planner splits.
SELECT visit_date, count(*) AS rows
FROM etl.staged_visits
WHERE run_id = %(run_id)s AND visit_date BETWEEN %(window_start)s AND %(window_end)s
GROUP BY visit_date
ORDER BY visit_date;
