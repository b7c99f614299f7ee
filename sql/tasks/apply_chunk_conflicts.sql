-- Task 02 for one chunk: compute the conflicts whose conflict date is one of the chunk's days and apply them: insert
-- new pairs, update changed ones, reopen RESOLVED ones, resolve the chunk's ACTIVE rows whose pair no longer
-- conflicts; rows whose stored values already match are not written. The chunk's days are those of [chunk_start,
-- chunk_end], or only the listed ones (days) when a stale run's chunk skips the days between its selected ones
-- (etl.chunks.owned_days, schema 15); "in this chunk" below means one of them.
-- A pair is owned by the visit with the smaller (visit_date, visit_id): it is found once, by one chunk.
-- Plan shapes: every chunk must cost in proportion to its own rows, whatever the statistics say and whatever
-- sibling chunks write meanwhile. A first run plans against a conflict map analysed empty (zero pages): the
-- planner then rescans the map once per conflict (a sequential scan inside a nested loop), and a sibling
-- inserting into the map makes every rescan longer, so the chunk grew with the square of its rows
-- (docs/benchmarks.md). The lookups that must be per-row index probes are LATERAL subqueries with OFFSET 0
-- (always a nested loop), and Task 02 runs with enable_nestloop and enable_seqscan off
-- (tasks.STATEMENT_SETTINGS): every other join is hashed or merged, and every table is read by an index.
WITH owners AS (
    SELECT s.*
    FROM etl.staged_visits s
    WHERE s.run_id = %(run_id)s AND s.visit_date BETWEEN %(chunk_start)s AND %(chunk_end)s
      AND (%(days)s::date[] IS NULL OR s.visit_date = ANY(%(days)s::date[]))
),
band AS (
    -- Partners of an owner start at most 26 h before it (24 h visit + 2 h gap) and at most 2 h after it
    -- ends: for each owner, one range scan on staged_visits_band_idx (run_id, caregiver_id, start_ts), so
    -- the cost is linear in the chunk's visits. The LATERAL subquery with OFFSET 0 keeps that shape: as a
    -- plain join the planner prefers a hash or merge join on (run_id, caregiver_id) with the band as a
    -- filter, which compares every pair of a caregiver's visits (quadratic in the window; docs/benchmarks.md).
    SELECT x.visit_id AS x_id, x.caregiver_id AS x_caregiver, x.visit_date AS x_date,
           x.start_ts AS x_start, x.end_ts AS x_end, x.lat AS x_lat, x.lon AS x_lon,
           y.visit_id AS y_id, y.visit_date AS y_date,
           y.start_ts AS y_start, y.end_ts AS y_end, y.lat AS y_lat, y.lon AS y_lon
    FROM owners x
    CROSS JOIN LATERAL (
        SELECT p.visit_id, p.visit_date, p.start_ts, p.end_ts, p.lat, p.lon
        FROM etl.staged_visits p
        WHERE p.run_id = %(run_id)s
          AND p.caregiver_id = x.caregiver_id
          AND p.start_ts >= x.start_ts - interval '26 hours'
          AND p.start_ts <= x.end_ts + interval '2 hours'
          AND p.provider_id <> x.provider_id
          AND (p.visit_date, p.visit_id) > (x.visit_date, x.visit_id)
        OFFSET 0
    ) y
),
moved AS (
    -- ACTIVE rows dated in this chunk whose pair's conflict date is now elsewhere: evaluated, so that a
    -- pair that still conflicts is not resolved here, but never written here (another chunk owns it).
    -- Each side is a primary-key lookup in the run's staging (LATERAL ... OFFSET 0: see "Plan shapes").
    SELECT x.visit_id, x.caregiver_id, x.visit_date, x.start_ts, x.end_ts, x.lat, x.lon,
           y.visit_id, y.visit_date, y.start_ts, y.end_ts, y.lat, y.lon
    FROM conflict.conflict_visit_maps m
    CROSS JOIN LATERAL (SELECT s.* FROM etl.staged_visits s
                        WHERE s.run_id = %(run_id)s AND s.visit_id = m.visit_id OFFSET 0) x
    CROSS JOIN LATERAL (SELECT s.* FROM etl.staged_visits s
                        WHERE s.run_id = %(run_id)s AND s.visit_id = m.conflict_visit_id
                          AND s.caregiver_id = x.caregiver_id AND s.provider_id <> x.provider_id OFFSET 0) y
    WHERE m.status = 'ACTIVE'
      AND m.conflict_date BETWEEN %(chunk_start)s AND %(chunk_end)s
      AND (%(days)s::date[] IS NULL OR m.conflict_date = ANY(%(days)s::date[]))
      AND NOT (least(x.visit_date, y.visit_date) BETWEEN %(chunk_start)s AND %(chunk_end)s
               AND (%(days)s::date[] IS NULL OR least(x.visit_date, y.visit_date) = ANY(%(days)s::date[])))
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
           CASE WHEN NOT m.overlaps THEN etl.round2_exact(m.distance) END AS distance_miles
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
    -- The stored row, by a primary-key lookup per conflict (LATERAL ... OFFSET 0: see "Plan shapes").
    LEFT JOIN LATERAL (
        SELECT e.* FROM conflict.conflict_visit_maps e
        WHERE e.visit_id = c.visit_id AND e.conflict_visit_id = c.conflict_visit_id
        OFFSET 0
    ) e ON true
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
