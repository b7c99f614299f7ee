-- The freshness of every day of a range (docs/freshness.md): NEVER when no chunk ever computed it; STALE when a
-- part of a day its result depends on has now another fingerprint than in the snapshot it was computed from, or a
-- visit of one of its ACTIVE conflicts was deleted; FRESH otherwise. Day d depends on the days d .. d + partner_days,
-- day d + k up to part etl.reach_part_limit (the visits its pairs can be made of: parts that begin at or before
-- the reach of its owners, recorded with its staging, and within the bound for any data), of parts 2-3 of d + 1 and
-- d + 2 only on the visits its late caregivers reach when its staging recorded them (schema 017), and on every
-- part of the days where the far visits of its ACTIVE conflicts now lie: the visits its staging found outside what
-- d depends on (a pair that moved to another date but still conflicts stays ACTIVE on d until the chunk of its new
-- date rewrites it). A visit of its other ACTIVE conflicts cannot move or go without changing what d depends on.
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
    -- (day, a day it depends on, the highest part of it it depends on: up to the reach of its owners; whether a far
    -- visit lies there: then every part of it, whole)
    SELECT day, dep_day, max(max_part) AS max_part, bool_or(far) AS far
    FROM (SELECT c.day, c.day + k AS dep_day, etl.reach_part_limit(k, r.reach, c.day + k) AS max_part, false AS far
          FROM computed c
          CROSS JOIN generate_series(0, %(partner_days)s) AS k
          LEFT JOIN etl.source_reach r ON r.run_id = c.run_id AND r.stage_no = c.stage_no AND r.day = c.day
          UNION ALL
          SELECT fv.day, fv.visit_date, 3::smallint, true FROM far_visits fv WHERE fv.visit_date IS NOT NULL) x
    GROUP BY day, dep_day
),
far_days AS (
    SELECT DISTINCT dep_day AS day
    FROM depends
    WHERE dep_day NOT BETWEEN %(range_start)s AND %(range_end)s::date + %(partner_days)s
),
current_days AS MATERIALIZED (
    -- today's rows per day, without hashing them: how many, and how many transaction ids the youngest row version
    -- is older than this statement's snapshot's xmax (etl.xmin_distance). One range scan over the range and its
    -- partner days, in parallel; one lookup per far day.
    SELECT v.visit_date AS day, count(*) AS visits,
           min(etl.xmin_distance(v.xmin, (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint))) AS youngest
    FROM analytics.visits v
    WHERE v.visit_date BETWEEN %(range_start)s AND %(range_end)s::date + %(partner_days)s
    GROUP BY v.visit_date
    UNION ALL
    SELECT f.day, x.visits, x.youngest
    FROM far_days f
    CROSS JOIN LATERAL (SELECT count(*) AS visits,
                               min(etl.xmin_distance(v.xmin, (SELECT pg_snapshot_xmax(pg_current_snapshot())
                                                                                   ::text::bigint))) AS youngest
                        FROM analytics.visits v
                        WHERE v.visit_date = f.day) x
),
recorded_whole AS MATERIALIZED (
    -- every staging's record of the days depended on, whole: the sums of its parts, and how many it recorded
    SELECT f.run_id, f.stage_no, f.day, sum(f.visits) AS visits, sum(f.hash) AS hash, count(*) AS parts
    FROM etl.source_fingerprints f
    WHERE f.day IN (SELECT dep_day FROM depends)
    GROUP BY f.run_id, f.stage_no, f.day
),
recorded_days AS (
    -- per computed day and day it depends on: the whole day as its staging recorded it (NULL: not recorded), by a
    -- hash join (a lookup per dependency read every part of every day of the staging, as its key leads with the run:
    -- 85 ms of 0.57 s at 90 days); and whether its parts 2-3 count only through the visits the computed day's late
    -- caregivers reach (late: its staging recorded those, schema 017, and no far visit lies there), with their
    -- fingerprint then
    SELECT d.day, d.dep_day, d.max_part, c.run_id, c.stage_no, w.visits, w.hash,
           (l.day IS NOT NULL AND d.max_part >= 2 AND NOT d.far) AS late, l.visits AS late_visits, l.hash AS late_hash
    FROM depends d
    JOIN computed c ON c.day = d.day
    LEFT JOIN recorded_whole w ON w.run_id = c.run_id AND w.stage_no = c.stage_no AND w.day = d.dep_day
    LEFT JOIN etl.source_late_fingerprints l ON l.run_id = c.run_id AND l.stage_no = c.stage_no AND l.day = d.day
                                            AND l.dep_day = d.dep_day
),
anchors AS (
    -- per day depended on: the staging that recorded it whole (its four parts) in the latest snapshot, if every row
    -- of the day today is older than that snapshot's xmin and there are as many as it recorded: then today's rows
    -- are the ones it read (schema 013), and so are its fingerprints. Only when that xmin is at most 2^30 transactions
    -- below this snapshot's xmax (and not above it: a restored ledger), so that distances modulo 2^32 are exact.
    SELECT DISTINCT ON (w.day) w.day, w.run_id, w.stage_no
    FROM recorded_whole w
    JOIN etl.source_snapshots s ON s.run_id = w.run_id AND s.stage_no = w.stage_no
    LEFT JOIN current_days n ON n.day = w.day
    CROSS JOIN (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax) t
    WHERE w.parts = 4
      AND t.xmax - s.snapshot_xmin::text::bigint BETWEEN 0 AND 1073741824
      AND w.visits = coalesce(n.visits, 0)
      AND (n.youngest IS NULL OR n.youngest > t.xmax - s.snapshot_xmin::text::bigint)
    ORDER BY w.day, s.snapshot_xmin DESC
),
unproven AS MATERIALIZED (
    -- the dependencies not proven unchanged: the day has no anchor, or the parts this computed day depends on differ
    -- between its staging's record and the anchor's (or its staging did not record them)
    SELECT r.*
    FROM recorded_days r
    LEFT JOIN anchors a ON a.day = r.dep_day
    WHERE a.day IS NULL
       OR EXISTS (SELECT 1
                  FROM generate_series(0, r.max_part) AS p (part)
                  LEFT JOIN etl.source_fingerprints x ON x.run_id = r.run_id AND x.stage_no = r.stage_no
                                                     AND x.day = r.dep_day AND x.part = p.part
                  LEFT JOIN etl.source_fingerprints y ON y.run_id = a.run_id AND y.stage_no = a.stage_no
                                                     AND y.day = r.dep_day AND y.part = p.part
                  WHERE x.day IS NULL OR (x.visits, x.hash) IS DISTINCT FROM (y.visits, y.hash))
),
hashed_days AS MATERIALIZED (
    -- today's whole-day fingerprints of the days of those dependencies only (a few: one index range scan each)
    SELECT u.dep_day AS day, x.visits, x.hash
    FROM (SELECT DISTINCT dep_day FROM unproven) u
    CROSS JOIN LATERAL (SELECT count(*) AS visits, coalesce(sum(etl.visit_row_hash(v)), 0) AS hash
                        FROM analytics.visits v
                        WHERE v.visit_date = u.dep_day) x
),
suspects AS MATERIALIZED (
    -- of those, the dependencies whose whole day differs (or was not recorded): only these are compared part by
    -- part. A visit that changes part changes its start, hence its hash: a day whose whole fingerprint is unchanged
    -- has every part unchanged.
    SELECT r.*
    FROM unproven r
    LEFT JOIN hashed_days n ON n.day = r.dep_day
    WHERE r.visits IS NULL OR (r.visits, r.hash) IS DISTINCT FROM (coalesce(n.visits, 0), coalesce(n.hash, 0))
),
current_parts AS MATERIALIZED (
    -- today's fingerprints of the suspect days, part by part (a few days: one index range scan each)
    SELECT r.visit_date AS day, etl.part_of(r.before_22h, r.before_2h, r.before_26h) AS part, count(*) AS visits,
           sum(r.hash) AS hash
    FROM etl.visit_part_rows r
    WHERE r.visit_date IN (SELECT dep_day FROM suspects)
    GROUP BY r.visit_date, r.before_22h, r.before_2h, r.before_26h
),
late_now AS MATERIALIZED (
    -- today's fingerprints of the visits of parts 2-3 of a suspect day that the late caregivers of the day depending
    -- on it reach (a few pairs of days: one day of owners and one of visits each, 7 ms; etl.late_partner_rows); not
    -- for a day whose own whole fingerprint differs (it is STALE whatever they are: after an upstream backfill of
    -- the whole horizon, none of these lookups is made)
    SELECT s.day, s.dep_day, x.visits, x.hash
    FROM (SELECT DISTINCT l.day, l.dep_day FROM suspects l
          WHERE l.late AND NOT EXISTS (SELECT 1 FROM suspects o WHERE o.day = l.day AND o.dep_day = l.day)) s
    CROSS JOIN LATERAL (SELECT count(*) AS visits, coalesce(sum(l.hash), 0) AS hash
                        FROM etl.late_partner_rows l
                        WHERE l.day = s.day AND l.dep_day = s.dep_day) x
),
changed AS (
    -- per computed day: the days it depends on with a part whose fingerprint differs from the one its staging
    -- recorded (an empty part is (0, 0) on both sides; a part its staging did not record counts as changed), parts
    -- 2-3 of a late dependency by the visits its late caregivers reach
    SELECT x.day, min(x.dep_day) AS first_changed, bool_or(x.dep_day = x.day) AS own_changed
    FROM (SELECT d.day, d.dep_day
          FROM suspects d
          CROSS JOIN LATERAL generate_series(0, CASE WHEN d.late THEN 1 ELSE d.max_part END) AS p (part)
          LEFT JOIN current_parts n ON n.day = d.dep_day AND n.part = p.part
          LEFT JOIN etl.source_fingerprints f ON f.run_id = d.run_id AND f.stage_no = d.stage_no
                                             AND f.day = d.dep_day AND f.part = p.part
          WHERE f.day IS NULL OR (f.visits, f.hash) IS DISTINCT FROM (coalesce(n.visits, 0), coalesce(n.hash, 0))
          UNION ALL
          SELECT d.day, d.dep_day
          FROM suspects d
          JOIN late_now n ON n.day = d.day AND n.dep_day = d.dep_day
          WHERE d.late AND (d.late_visits, d.late_hash) IS DISTINCT FROM (n.visits, n.hash)) x
    GROUP BY x.day
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
