-- Inside the staging transaction: write what freshness/read_fingerprints read in its snapshot, under the run's
-- current staging (stage_no = the run's redrives): the part fingerprints of the days it read, the far visits, the
-- reach of each owner day (schema 011), the xmin of its snapshot (schema 013), and the fingerprints of the visits of
-- the next two days that each owner day's late caregivers reach (schema 017).
WITH stage AS (
    SELECT r.run_id, r.redrives AS stage_no FROM etl.runs r WHERE r.run_id = %(run_id)s
),
far AS (
    INSERT INTO etl.source_far_visits (run_id, stage_no, day, visit_id)
    SELECT s.run_id, s.stage_no, f.day, f.visit_id
    FROM stage s
    CROSS JOIN unnest(%(far_days)s::date[], %(far_visit_ids)s::bigint[]) AS f (day, visit_id)
    ON CONFLICT DO NOTHING
),
snapshot AS (
    -- this transaction's snapshot (REPEATABLE READ: the one the fingerprints were read in, here or exported)
    INSERT INTO etl.source_snapshots (run_id, stage_no, snapshot_xmin)
    SELECT s.run_id, s.stage_no, pg_snapshot_xmin(pg_current_snapshot()) FROM stage s
    ON CONFLICT (run_id, stage_no) DO UPDATE SET snapshot_xmin = EXCLUDED.snapshot_xmin
),
reach AS (
    INSERT INTO etl.source_reach (run_id, stage_no, day, reach)
    SELECT s.run_id, s.stage_no, r.day, r.reach
    FROM stage s
    CROSS JOIN unnest(%(reach_days)s::date[], %(reaches)s::timestamp[]) AS r (day, reach)
    ON CONFLICT (run_id, stage_no, day) DO UPDATE SET reach = EXCLUDED.reach
),
late AS (
    INSERT INTO etl.source_late_fingerprints (run_id, stage_no, day, dep_day, visits, hash)
    SELECT s.run_id, s.stage_no, l.day, l.dep_day, l.visits, l.hash
    FROM stage s
    CROSS JOIN unnest(%(late_days)s::date[], %(late_dep_days)s::date[], %(late_visits)s::bigint[],
                      %(late_hashes)s::numeric[]) AS l (day, dep_day, visits, hash)
    ON CONFLICT (run_id, stage_no, day, dep_day) DO UPDATE SET visits = EXCLUDED.visits, hash = EXCLUDED.hash
)
INSERT INTO etl.source_fingerprints (run_id, stage_no, day, part, visits, hash)
SELECT s.run_id, s.stage_no, f.day, f.part, f.visits, f.hash
FROM stage s
CROSS JOIN unnest(%(days)s::date[], %(parts)s::smallint[], %(visits)s::bigint[], %(hashes)s::numeric[])
    AS f (day, part, visits, hash)
ON CONFLICT (run_id, stage_no, day, part) DO UPDATE SET visits = EXCLUDED.visits, hash = EXCLUDED.hash;
