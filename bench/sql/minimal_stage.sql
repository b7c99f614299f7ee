-- Benchmark only: the minimal single statement's load (bench/user_view.py), the floor a user would compare
-- with. The eligible visits of the window and their partners' days, into a temporary table, no rejections kept.
CREATE TEMPORARY TABLE minimal_visits ON COMMIT DROP AS
SELECT v.visit_id, v.caregiver_id, v.provider_id, v.visit_date,
       coalesce(v.clock_in, v.scheduled_start) AS start_ts, coalesce(v.clock_out, v.scheduled_end) AS end_ts,
       CASE WHEN v.clock_in_lat BETWEEN -90 AND 90 AND v.clock_in_lon BETWEEN -180 AND 180 THEN v.clock_in_lat END AS lat,
       CASE WHEN v.clock_in_lat BETWEEN -90 AND 90 AND v.clock_in_lon BETWEEN -180 AND 180 THEN v.clock_in_lon END AS lon
FROM analytics.visits v
WHERE v.visit_date BETWEEN %(start)s AND %(partner_end)s
  AND v.status <> 'CANCELLED'
  AND coalesce(v.clock_out, v.scheduled_end) > coalesce(v.clock_in, v.scheduled_start)
  AND coalesce(v.clock_out, v.scheduled_end) - coalesce(v.clock_in, v.scheduled_start) <= interval '24 hours'
  AND coalesce(v.clock_in, v.scheduled_start)::date BETWEEN v.visit_date - 1 AND v.visit_date + 1;
