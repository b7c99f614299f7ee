-- Benchmark only (bench/run_bench.py), never run by the pipeline: Task 02 as the original job joined it.
-- Identical to sql/tasks/apply_chunk_conflicts.sql except for the band CTE: partners are found by
-- y.caregiver_id = x.caregiver_id alone, with no time band, so every pair of a caregiver's visits in the
-- window is compared. Same output; the benchmark checks that both leave the same conflict map.
WITH owners AS (
    SELECT s.*
    FROM etl.staged_visits s
    WHERE s.run_id = %(run_id)s AND s.visit_date BETWEEN %(chunk_start)s AND %(chunk_end)s
      AND (%(days)s::date[] IS NULL OR s.visit_date = ANY(%(days)s::date[]))
),
band AS (
    -- The original job's join: every pair of the caregiver's staged visits, no time band.
    SELECT x.visit_id AS x_id, x.caregiver_id AS x_caregiver, x.visit_date AS x_date,
           x.start_ts AS x_start, x.end_ts AS x_end, x.lat AS x_lat, x.lon AS x_lon,
           y.visit_id AS y_id, y.visit_date AS y_date,
           y.start_ts AS y_start, y.end_ts AS y_end, y.lat AS y_lat, y.lon AS y_lon
    FROM owners x
    JOIN etl.staged_visits y
      ON y.run_id = x.run_id
     AND y.caregiver_id = x.caregiver_id
    WHERE y.provider_id <> x.provider_id
      AND (y.visit_date, y.visit_id) > (x.visit_date, x.visit_id)
),
moved AS (
    -- ACTIVE rows dated in this chunk whose pair's conflict date is now elsewhere: evaluated, so that a
    -- pair that still conflicts is not resolved here, but never written here (another chunk owns it).
    SELECT x.visit_id, x.caregiver_id, x.visit_date, x.start_ts, x.end_ts, x.lat, x.lon,
           y.visit_id, y.visit_date, y.start_ts, y.end_ts, y.lat, y.lon
    FROM conflict.conflict_visit_maps m
    JOIN etl.staged_visits x ON x.run_id = %(run_id)s AND x.visit_id = m.visit_id
    JOIN etl.staged_visits y ON y.run_id = %(run_id)s AND y.visit_id = m.conflict_visit_id
    WHERE m.status = 'ACTIVE'
      AND m.conflict_date BETWEEN %(chunk_start)s AND %(chunk_end)s
      AND (%(days)s::date[] IS NULL OR m.conflict_date = ANY(%(days)s::date[]))
      AND NOT (least(x.visit_date, y.visit_date) BETWEEN %(chunk_start)s AND %(chunk_end)s
               AND (%(days)s::date[] IS NULL OR least(x.visit_date, y.visit_date) = ANY(%(days)s::date[])))
      AND y.caregiver_id = x.caregiver_id
      AND y.provider_id <> x.provider_id
),
candidates AS (
    SELECT * FROM band
    UNION ALL
    SELECT * FROM moved
),
measured AS (
    SELECT least(c.x_id, c.y_id) AS visit_id,
           greatest(c.x_id, c.y_id) AS conflict_visit_id,
           c.x_caregiver AS caregiver_id,
           least(c.x_date, c.y_date) AS conflict_date,
           (c.x_start < c.y_end AND c.y_start < c.x_end) AS overlaps,
           (extract(epoch FROM least(c.x_end, c.y_end) - greatest(c.x_start, c.y_start)) / 60)::numeric
               AS overlap_min,
           (extract(epoch FROM greatest(c.x_start, c.y_start) - least(c.x_end, c.y_end)) / 60)::numeric
               AS gap_min,
           -- haversine, earth radius 3958.8 miles; null unless both visits have a location (checked
           -- explicitly: least() ignores nulls, so least(1.0, null) would be a half-circumference)
           CASE WHEN c.x_lat IS NOT NULL AND c.y_lat IS NOT NULL THEN
               2 * 3958.8 * asin(sqrt(least(1.0,
                   power(sin(radians(c.y_lat - c.x_lat) / 2), 2)
                   + cos(radians(c.x_lat)) * cos(radians(c.y_lat)) * power(sin(radians(c.y_lon - c.x_lon) / 2), 2)
               )))
           END AS distance
    FROM candidates c
),
conflicts AS (
    SELECT m.visit_id, m.conflict_visit_id, m.caregiver_id, m.conflict_date,
           CASE WHEN m.overlaps THEN 'OVERLAP' ELSE 'TRAVEL' END AS conflict_type,
           CASE WHEN m.overlaps THEN round(m.overlap_min, 2) END AS overlap_minutes,
           CASE WHEN NOT m.overlaps THEN round(m.gap_min, 2) END AS gap_minutes,
           CASE WHEN NOT m.overlaps THEN round(m.distance::numeric, 2) END AS distance_miles
    FROM measured m
    WHERE m.overlaps
       OR (m.distance IS NOT NULL AND m.gap_min <= 120 AND m.gap_min < 2 * m.distance)
),
changes AS (
    SELECT c.*,
           CASE
               WHEN e.visit_id IS NULL THEN 'inserted'
               WHEN e.status = 'RESOLVED' THEN 'reopened'
               WHEN (e.caregiver_id, e.conflict_date, e.conflict_type,
                     e.overlap_minutes, e.gap_minutes, e.distance_miles)
                    IS NOT DISTINCT FROM
                    (c.caregiver_id, c.conflict_date, c.conflict_type,
                     c.overlap_minutes, c.gap_minutes, c.distance_miles) THEN 'unchanged'
               ELSE 'updated'
           END AS action
    FROM conflicts c
    LEFT JOIN conflict.conflict_visit_maps e
           ON e.visit_id = c.visit_id AND e.conflict_visit_id = c.conflict_visit_id
    WHERE c.conflict_date BETWEEN %(chunk_start)s AND %(chunk_end)s
      AND (%(days)s::date[] IS NULL OR c.conflict_date = ANY(%(days)s::date[]))
),
written AS (
    INSERT INTO conflict.conflict_visit_maps AS t
        (visit_id, conflict_visit_id, caregiver_id, conflict_date, conflict_type,
         overlap_minutes, gap_minutes, distance_miles, status, first_detected_run_id, last_changed_run_id)
    SELECT visit_id, conflict_visit_id, caregiver_id, conflict_date, conflict_type,
           overlap_minutes, gap_minutes, distance_miles, 'ACTIVE', %(run_id)s, %(run_id)s
    FROM changes
    WHERE action <> 'unchanged'
    ON CONFLICT (visit_id, conflict_visit_id) DO UPDATE
        SET caregiver_id = EXCLUDED.caregiver_id,
            conflict_date = EXCLUDED.conflict_date,
            conflict_type = EXCLUDED.conflict_type,
            overlap_minutes = EXCLUDED.overlap_minutes,
            gap_minutes = EXCLUDED.gap_minutes,
            distance_miles = EXCLUDED.distance_miles,
            status = 'ACTIVE',
            last_changed_run_id = EXCLUDED.last_changed_run_id,
            updated_at = now(),
            resolved_at = NULL
    RETURNING 1
),
resolved AS (
    UPDATE conflict.conflict_visit_maps t
       SET status = 'RESOLVED', resolved_at = now(), updated_at = now(), last_changed_run_id = %(run_id)s
     WHERE t.status = 'ACTIVE'
       AND t.conflict_date BETWEEN %(chunk_start)s AND %(chunk_end)s
       AND (%(days)s::date[] IS NULL OR t.conflict_date = ANY(%(days)s::date[]))
       AND NOT EXISTS (SELECT 1 FROM conflicts c
                       WHERE c.visit_id = t.visit_id AND c.conflict_visit_id = t.conflict_visit_id)
    RETURNING 1
)
SELECT (SELECT count(*) FROM owners) AS visits,
       count(*) FILTER (WHERE action = 'inserted') AS inserted,
       count(*) FILTER (WHERE action = 'updated') AS updated,
       count(*) FILTER (WHERE action = 'reopened') AS reopened,
       count(*) FILTER (WHERE action = 'unchanged') AS unchanged,
       (SELECT count(*) FROM resolved) AS resolved,
       (SELECT count(*) FROM written) AS written
FROM changes;
