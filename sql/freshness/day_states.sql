-- The freshness of every day of a range (docs/freshness.md): NEVER when no chunk ever computed it; STALE when a
-- day its result depends on has now another fingerprint than in the snapshot it was computed from, or a visit of
-- one of its ACTIVE conflicts was deleted; FRESH otherwise. Day d depends on the days d .. d + partner_days (the
-- visits its pairs are made of) and on the days where the far visits of its ACTIVE conflicts now lie: the visits its
-- staging found outside d .. d + partner_days (a pair that moved to another date but still conflicts stays ACTIVE
-- on d until the chunk of its new date rewrites it). A visit of its other ACTIVE conflicts cannot move or go without
-- changing a day d .. d + partner_days.
WITH days AS (
    SELECT d::date AS day
    FROM generate_series(%(range_start)s::date, %(range_end)s::date, interval '1 day') AS d
),
computed AS (
    SELECT s.day, s.run_id, s.stage_no, s.computed_at
    FROM etl.day_state s
    WHERE s.day BETWEEN %(range_start)s AND %(range_end)s
),
far_visits AS (
    -- the far visits recorded for each computed day, still in one of its ACTIVE conflicts, on the date they have now
    -- (NULL: deleted)
    SELECT c.day, v.visit_date
    FROM computed c
    JOIN etl.source_far_visits f ON f.run_id = c.run_id AND f.stage_no = c.stage_no AND f.day = c.day
    LEFT JOIN analytics.visits v ON v.visit_id = f.visit_id
    WHERE EXISTS (SELECT 1 FROM conflict.conflict_visit_maps m
                  WHERE m.status = 'ACTIVE' AND m.conflict_date = c.day
                    AND f.visit_id IN (m.visit_id, m.conflict_visit_id))
),
depends AS (
    SELECT c.day, c.day + k AS dep_day
    FROM computed c
    CROSS JOIN generate_series(0, %(partner_days)s) AS k
    UNION
    SELECT fv.day, fv.visit_date FROM far_visits fv WHERE fv.visit_date IS NOT NULL
),
far_days AS (
    SELECT DISTINCT dep_day AS day
    FROM depends
    WHERE dep_day NOT BETWEEN %(range_start)s AND %(range_end)s::date + %(partner_days)s
),
current AS (
    -- today's fingerprints: one range scan over the range and its partner days, one lookup per far day
    SELECT v.visit_date AS day, count(*) AS visits, sum(etl.visit_row_hash(v)) AS hash
    FROM analytics.visits v
    WHERE v.visit_date BETWEEN %(range_start)s AND %(range_end)s::date + %(partner_days)s
    GROUP BY v.visit_date
    UNION ALL
    SELECT f.day, x.visits, x.hash
    FROM far_days f
    CROSS JOIN LATERAL (SELECT count(*) AS visits, coalesce(sum(etl.visit_row_hash(v)), 0) AS hash
                        FROM analytics.visits v
                        WHERE v.visit_date = f.day) x
),
changed AS (
    -- per computed day: the days it depends on whose fingerprint differs from the one its staging recorded
    SELECT d.day, min(d.dep_day) AS first_changed, bool_or(d.dep_day = d.day) AS own_changed
    FROM depends d
    JOIN computed c ON c.day = d.day
    LEFT JOIN current n ON n.day = d.dep_day
    LEFT JOIN etl.source_fingerprints f ON f.run_id = c.run_id AND f.stage_no = c.stage_no AND f.day = d.dep_day
    WHERE f.day IS NULL OR (f.visits, f.hash) IS DISTINCT FROM (coalesce(n.visits, 0), coalesce(n.hash, 0))
    GROUP BY d.day
),
deleted AS (
    SELECT DISTINCT fv.day FROM far_visits fv WHERE fv.visit_date IS NULL
)
SELECT d.day, c.run_id, c.computed_at,
       CASE WHEN c.day IS NULL THEN 'NEVER'
            WHEN ch.day IS NOT NULL OR x.day IS NOT NULL THEN 'STALE'
            ELSE 'FRESH' END AS state,
       CASE WHEN c.day IS NULL THEN 'NEVER'
            WHEN ch.own_changed THEN 'CHANGED'
            WHEN ch.day IS NOT NULL OR x.day IS NOT NULL THEN 'DEPENDENT' END AS reason,
       CASE WHEN c.day IS NOT NULL THEN ch.first_changed END AS cause_day
FROM days d
LEFT JOIN computed c ON c.day = d.day
LEFT JOIN changed ch ON ch.day = d.day
LEFT JOIN deleted x ON x.day = d.day
ORDER BY d.day;
