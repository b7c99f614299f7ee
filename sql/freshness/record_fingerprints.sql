-- In the staging snapshot: the fingerprint of every day the staging reads (its staged days: owner days and their
-- partner days, and the days where the visits of the ACTIVE conflicts dated on its owner days lie), and those of
-- these visits that lie outside their conflict's day and its partner days (far visits). A fingerprint is the day's
-- number of visit rows and the sum of their hashes, cancelled visits included (one index range scan per day).
WITH stage AS (
    SELECT r.run_id, r.redrives AS stage_no FROM etl.runs r WHERE r.run_id = %(run_id)s
),
conflict_visits AS (
    SELECT m.conflict_date, p.visit_id, v.visit_date
    FROM conflict.conflict_visit_maps m
    CROSS JOIN LATERAL (VALUES (m.visit_id), (m.conflict_visit_id)) AS p (visit_id)
    CROSS JOIN LATERAL (SELECT x.visit_date FROM analytics.visits x WHERE x.visit_id = p.visit_id OFFSET 0) AS v
    WHERE m.status = 'ACTIVE' AND m.conflict_date = ANY(%(days)s::date[])
),
far AS (
    INSERT INTO etl.source_far_visits (run_id, stage_no, day, visit_id)
    SELECT DISTINCT s.run_id, s.stage_no, c.conflict_date, c.visit_id
    FROM conflict_visits c
    CROSS JOIN stage s
    WHERE c.visit_date IS NULL  -- a visit with no date is in no day: followed as a far visit
       OR c.visit_date NOT BETWEEN c.conflict_date AND c.conflict_date + %(partner_days)s
    ON CONFLICT DO NOTHING
),
read_days AS (
    SELECT d AS day FROM unnest(%(stage_days)s::date[]) AS d
    UNION
    SELECT visit_date FROM conflict_visits WHERE visit_date IS NOT NULL
)
INSERT INTO etl.source_fingerprints (run_id, stage_no, day, visits, hash)
SELECT s.run_id, s.stage_no, d.day, f.visits, f.hash
FROM stage s
CROSS JOIN read_days d
CROSS JOIN LATERAL (SELECT count(*) AS visits, coalesce(sum(etl.visit_row_hash(v)), 0) AS hash
                    FROM analytics.visits v
                    WHERE v.visit_date = d.day) f
ON CONFLICT (run_id, stage_no, day) DO UPDATE SET visits = EXCLUDED.visits, hash = EXCLUDED.hash;
