-- In the staging snapshot, the fingerprint of every day the staging reads: its staged days (owner days and their
-- partner days) and the days where the visits of the ACTIVE conflicts dated on its owner days now lie. A fingerprint
-- is the day's number of visit rows and the sum of their hashes, cancelled visits included (one index range
-- scan on visits_visit_date_idx per day).
WITH read_days AS (
    SELECT d AS day FROM unnest(%(stage_days)s::date[]) AS d
    UNION
    SELECT v.visit_date
    FROM analytics.visits v
    WHERE v.visit_id IN (
            SELECT m.visit_id FROM conflict.conflict_visit_maps m
            WHERE m.status = 'ACTIVE' AND m.conflict_date = ANY(%(days)s::date[])
            UNION
            SELECT m.conflict_visit_id FROM conflict.conflict_visit_maps m
            WHERE m.status = 'ACTIVE' AND m.conflict_date = ANY(%(days)s::date[]))
)
INSERT INTO etl.source_fingerprints (run_id, stage_no, day, visits, hash)
SELECT r.run_id, r.redrives, d.day, f.visits, f.hash
FROM etl.runs r
CROSS JOIN read_days d
CROSS JOIN LATERAL (SELECT count(*) AS visits, coalesce(sum(etl.visit_row_hash(v)), 0) AS hash
                    FROM analytics.visits v
                    WHERE v.visit_date = d.day) f
WHERE r.run_id = %(run_id)s
ON CONFLICT (run_id, stage_no, day) DO UPDATE SET visits = EXCLUDED.visits, hash = EXCLUDED.hash;
