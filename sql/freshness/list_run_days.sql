-- The days a stale run selected and why, in date order.
SELECT day, reason, cause_day, previous_run_id FROM etl.run_days WHERE run_id = %(run_id)s ORDER BY day;
