-- Version 11: the reach of a computed day's owners, recorded with its fingerprints (docs/freshness.md, "Reach").
-- Every partner of an owner dated d starts at most 2 h after the owner ends, so in a staging's snapshot no visit
-- starting after the latest end of d's owners that can be eligible, plus 2 h, can be in d's pairs. That end is
-- usually the evening after d (for any data, an owner ends before d + 3): d then depends on no part of a later day
-- that begins past it. Per run and staging, each owner day's reach; a day without an owner that can be eligible
-- has no row, and the bound of version 9 applies.
CREATE TABLE etl.source_reach (
    run_id   bigint NOT NULL REFERENCES etl.runs (run_id),
    stage_no integer NOT NULL,
    day      date NOT NULL,
    reach    timestamp NOT NULL,
    PRIMARY KEY (run_id, stage_no, day)
);

-- The visits that can be eligible owners by the three rules an owner's reach rests on (not cancelled, a start
-- before d + 2, more than nothing and at most 24 h) and their effective end: the latest end of a day's, plus 2 h, is
-- its reach (freshness/read_fingerprints) and where the staging stops reading the days after it
-- (tasks/owner_last_ends). A visit ineligible for another reason only makes the end later: more is read, never less.
-- The end is finite by the rules.
CREATE VIEW etl.owner_ends AS
SELECT v.visit_date, coalesce(v.clock_out, v.scheduled_end) AS end_ts
FROM analytics.visits v
WHERE v.status IS DISTINCT FROM 'CANCELLED'
  AND coalesce(v.clock_in, v.scheduled_start) < v.visit_date + 2
  AND coalesce(v.clock_out, v.scheduled_end) > coalesce(v.clock_in, v.scheduled_start)
  AND coalesce(v.clock_out, v.scheduled_end) <= coalesce(v.clock_in, v.scheduled_start) + interval '24 hours';

-- The highest part of day e = d + k that day d depends on, given the reach of d's owners: the bound of version 9
-- (etl.partner_part_limit(k)), lowered to the last part that begins at or before the reach. Part 0 begins at
-- -infinity, part 1 at e - 22 h, part 2 at e + 2 h, part 3 at e + 26 h. Day d itself (k = 0) is all of it, and so is
-- everything when the reach is unknown (NULL). Compared with timestamps, never subtracted.
CREATE FUNCTION etl.reach_part_limit(k integer, reach timestamp, e date) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN k = 0 OR reach IS NULL THEN etl.partner_part_limit(k)
                ELSE least(etl.partner_part_limit(k),
                           CASE WHEN reach >= e + interval '26 hours' THEN 3
                                WHEN reach >= e + interval '2 hours' THEN 2
                                WHEN reach >= e - interval '22 hours' THEN 1
                                ELSE 0 END)::smallint END
$$;
