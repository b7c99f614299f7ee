-- Version 17: of the daytime of a later day, a day depends only on the visits of its own late caregivers
-- (docs/freshness.md, rule 1). A partner shares its owner's caregiver and starts at most 2 h after the owner ends, so
-- a visit of day e = d + k that starts at or after e + 2 h (part 2 or 3 of e) can be in d's pairs only if its
-- caregiver has an owner dated d that can be eligible whose end plus 2 h is at or after that start. Such an owner
-- ends at or after d + 1 (the next midnight): a late owner, a few hundred of a day's caregivers in the benchmark's
-- population (the staging reads partner days by the same rule: schema 12). Day d's reach (schema 11) still bounds
-- the parts of e it depends on, but parts 2 and 3 now count only through these visits: a daytime edit on e no longer
-- makes e - 1 stale, unless a caregiver of e - 1 is late and can reach the edited visit. Each staging records, per
-- owner day d and k = 1, 2 (the only k whose bound reaches part 2: etl.partner_part_limit), the fingerprint of those
-- visits of d + k in its snapshot; the freshness check compares it when d + k changed since.

-- etl.visit_part_rows gains each visit's caregiver and effective start, after its columns (schema 9's rules).
CREATE OR REPLACE VIEW etl.visit_part_rows AS
SELECT v.visit_id, v.visit_date,
       coalesce(coalesce(v.clock_in, v.scheduled_start) < v.visit_date - interval '22 hours', false) AS before_22h,
       coalesce(coalesce(v.clock_in, v.scheduled_start) < v.visit_date + interval '2 hours', false) AS before_2h,
       coalesce(coalesce(v.clock_in, v.scheduled_start) < v.visit_date + interval '26 hours', false) AS before_26h,
       etl.visit_row_hash(v) AS hash,
       v.caregiver_id,
       coalesce(v.clock_in, v.scheduled_start) AS start_ts
FROM analytics.visits v;

-- Per owner day, its late caregivers: those with an owner that can be eligible ending at or after the next midnight
-- (etl.owner_ends), and their reach, the latest such end plus 2 h (the latest end of all of the caregiver's owners
-- that day, as it is one of these). No other caregiver of the day reaches part 2 of a later day (it begins at
-- e + 2 h, e >= d + 1). Filtered before grouping: a few hundred rows a day, not every caregiver's (grouping all of
-- them spilled to disk at 1M visits).
CREATE VIEW etl.late_owner_reach AS
SELECT o.visit_date AS day, o.caregiver_id, max(o.end_ts) + interval '2 hours' AS reach
FROM etl.owner_ends o
WHERE o.end_ts >= o.visit_date + 1
GROUP BY o.visit_date, o.caregiver_id;

-- Per owner day d and later day dep_day (d + 1 or d + 2): the visits of dep_day in part 2 or 3 (from dep_day + 2 h)
-- that one of d's late caregivers can reach. With the parts 0-1 of dep_day, they are all of dep_day that d's pairs
-- can be made of. Filtered on day and dep_day, it reads one day of owners and one of visits. Two shapes keep a full
-- run's staging cheap (0.76 s of this join at 1M visits instead of 82 s): the late caregivers are expanded to their
-- (caregiver, dep_day) keys in a subquery the planner keeps whole (its set-returning target), so the join is on both
-- keys, not on the caregiver with every date of it filtered; and the visits are joined narrow, their hashes computed
-- only for the few that join (by primary key), not for every visit the join reads.
CREATE VIEW etl.late_partner_rows AS
SELECT r.day, p.visit_date AS dep_day, p.visit_id, h.hash
FROM (SELECT l.day, l.caregiver_id, l.reach, l.day + generate_series(1, 2) AS dep_day
      FROM etl.late_owner_reach l) AS r
JOIN etl.visit_part_rows p ON p.caregiver_id = r.caregiver_id AND p.visit_date = r.dep_day
JOIN etl.visit_part_rows h ON h.visit_id = p.visit_id
WHERE NOT p.before_2h
  AND p.start_ts <= r.reach;

-- Per run and staging, per owner day and dep_day (when d's reach, recorded in etl.source_reach, lets d depend on
-- part 2 of it: etl.reach_part_limit >= 2): the number of those visits and the sum of their hashes, (0, 0) when
-- there are none. A staging before this version recorded none: its days keep depending on the whole parts.
CREATE TABLE etl.source_late_fingerprints (
    run_id   bigint NOT NULL REFERENCES etl.runs (run_id),
    stage_no integer NOT NULL,
    day      date NOT NULL,
    dep_day  date NOT NULL CHECK (dep_day BETWEEN day + 1 AND day + 2),
    visits   bigint NOT NULL,
    hash     numeric NOT NULL,
    PRIMARY KEY (run_id, stage_no, day, dep_day)
);
