-- Version 9: fingerprints per day *and part of the day* (docs/freshness.md, "Parts of a day"). A visit's part is
-- where its effective start (clock-in, else scheduled start) lies against its visit_date d:
--   0: before d - 22 h    1: d - 22 h .. d + 2 h    2: d + 2 h .. d + 26 h    3: from d + 26 h, or no start
-- An owner dated d ends before d + 3 and its partners start before d + 3 days 2 h, so day d depends on all of
-- d and d + 1 but only on parts 0-2 of d + 2, parts 0-1 of d + 3 and part 0 of d + 4 (etl.partner_part_limit):
-- a daytime edit makes 3 days stale instead of 5, and a stale run stages less of its partner days.
-- Compared with timestamps, never subtracted: an infinite start falls in part 0 or 3 and raises nothing. The edges
-- are written once, in etl.visit_part_rows below; etl.part_of turns them into the part.
-- The highest part of day d + k that day d depends on (k = 0 .. 4; tasks.PARTNER_DAYS = 4).
CREATE FUNCTION etl.partner_part_limit(k integer) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT least(3, 4 - k)::smallint
$$;

-- The fingerprints recorded so far are per whole day: they cannot be compared part by part, so they go, and every
-- day computed before this version reads as STALE (no fingerprint recorded): the first stale run after the upgrade
-- recomputes its range once, then records fingerprints per part.
DELETE FROM etl.source_fingerprints;
ALTER TABLE etl.source_fingerprints DROP CONSTRAINT source_fingerprints_pkey;
ALTER TABLE etl.source_fingerprints ADD COLUMN part smallint NOT NULL CHECK (part BETWEEN 0 AND 3);
ALTER TABLE etl.source_fingerprints ADD PRIMARY KEY (run_id, stage_no, day, part);


-- Each visit row with its hash and where its start lies against the three edges of the parts (coalesced to false
-- when the visit has no date, i.e. part 3). Grouping a range by (visit_date, before_22h, before_2h, before_26h)
-- lets the planner aggregate in parallel (it estimates two values a boolean; grouping by the part expression
-- itself made it sort every row, serially, at twice the time); etl.part_of turns the three back into the part.
CREATE VIEW etl.visit_part_rows AS
SELECT v.visit_id, v.visit_date,
       coalesce(coalesce(v.clock_in, v.scheduled_start) < v.visit_date - interval '22 hours', false) AS before_22h,
       coalesce(coalesce(v.clock_in, v.scheduled_start) < v.visit_date + interval '2 hours', false) AS before_2h,
       coalesce(coalesce(v.clock_in, v.scheduled_start) < v.visit_date + interval '26 hours', false) AS before_26h,
       etl.visit_row_hash(v) AS hash
FROM analytics.visits v;

CREATE FUNCTION etl.part_of(before_22h boolean, before_2h boolean, before_26h boolean) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE WHEN before_22h THEN 0 WHEN before_2h THEN 1 WHEN before_26h THEN 2 ELSE 3 END)::smallint
$$;
