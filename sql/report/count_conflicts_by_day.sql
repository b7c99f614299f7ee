-- ACTIVE conflicts per conflict date of a window, by type: one row for every day, zeros included.
SELECT day::date AS conflict_date,
       count(m.visit_id) FILTER (WHERE m.conflict_type = 'OVERLAP') AS overlap,
       count(m.visit_id) FILTER (WHERE m.conflict_type = 'TRAVEL') AS travel
  FROM generate_series(%(window_start)s::date, %(window_end)s::date, interval '1 day') AS day
  LEFT JOIN conflict.conflict_visit_maps m
    ON m.conflict_date = day::date AND m.status = 'ACTIVE'
 GROUP BY day
 ORDER BY day;
