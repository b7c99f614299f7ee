-- Non-cancelled visits per service date of a window: the plan preview's estimate of staged rows (read-only).
SELECT visit_date, count(*) AS rows
FROM analytics.visits
WHERE visit_date BETWEEN %(window_start)s AND %(window_end)s AND status <> 'CANCELLED'
GROUP BY visit_date
ORDER BY visit_date;
