-- Task 01's counts of what it staged for a run: every staged visit, and those dated on its owner days (the window,
-- or a stale run's selected days).
SELECT count(*) AS staged_rows,
       count(*) FILTER (WHERE s.visit_date BETWEEN %(range_start)s AND %(range_end)s
                          AND (%(days)s::date[] IS NULL OR s.visit_date = ANY(%(days)s::date[]))) AS owner_rows
FROM etl.staged_visits s
WHERE s.run_id = %(run_id)s;
