-- Benchmark only: the minimal single statement's band join (bench/user_view.py): the same pairs and rules as
-- Task 02, written to a temporary result table; no existing map to compare with, nothing resolved.
CREATE TEMPORARY TABLE minimal_conflicts ON COMMIT DROP AS
WITH pairs AS (
    SELECT x.visit_id AS x_id, x.caregiver_id, least(x.visit_date, y.visit_date) AS conflict_date,
           y.visit_id AS y_id, x.start_ts AS x_start, x.end_ts AS x_end, y.start_ts AS y_start, y.end_ts AS y_end,
           x.lat AS x_lat, x.lon AS x_lon, y.lat AS y_lat, y.lon AS y_lon
    FROM minimal_visits x
    CROSS JOIN LATERAL (
        SELECT p.* FROM minimal_visits p
        WHERE p.caregiver_id = x.caregiver_id
          AND p.start_ts >= x.start_ts - interval '26 hours' AND p.start_ts <= x.end_ts + interval '2 hours'
          AND p.provider_id <> x.provider_id AND (p.visit_date, p.visit_id) > (x.visit_date, x.visit_id)
        OFFSET 0
    ) y
    WHERE x.visit_date BETWEEN %(start)s AND %(end)s
),
measured AS (
    SELECT p.*, (p.x_start < p.y_end AND p.y_start < p.x_end) AS is_overlap,
           extract(epoch FROM greatest(p.x_start, p.y_start) - least(p.x_end, p.y_end)) / 60 AS gap_min,
           CASE WHEN p.x_lat IS NOT NULL AND p.y_lat IS NOT NULL THEN
               2 * 3958.8 * asin(sqrt(least(1.0, power(sin(radians(p.y_lat - p.x_lat) / 2), 2)
                   + cos(radians(p.x_lat)) * cos(radians(p.y_lat)) * power(sin(radians(p.y_lon - p.x_lon) / 2), 2))))
           END AS distance
    FROM pairs p
)
SELECT least(x_id, y_id) AS visit_id, greatest(x_id, y_id) AS conflict_visit_id, caregiver_id, conflict_date,
       CASE WHEN is_overlap THEN 'OVERLAP' ELSE 'TRAVEL' END AS conflict_type
FROM measured
WHERE is_overlap OR (distance IS NOT NULL AND gap_min <= 120 AND gap_min < 2 * distance);
