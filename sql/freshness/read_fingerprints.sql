-- In the staging snapshot (read-only, so that PostgreSQL may scan in parallel: it never does for a statement that
-- writes): the fingerprint of every day the staging reads, part by part (its staged days: owner days and their
-- partner days, and the days where the visits of the ACTIVE conflicts dated on its owner days lie), and those of
-- these visits that lie outside what their conflict's day depends on (far visits: another day than
-- d .. d + partner_days, a part of it above etl.reach_part_limit, or a part from 2 on that none of d's late
-- caregivers reaches). A fingerprint is the number of visit rows of a day's part and the sum of their hashes,
-- cancelled visits included; all four parts of a read day are returned, empty ones as (0, 0), so that a part
-- missing from the ledger always means "not read"; each owner day's reach (schema 011), which also decides what
-- lies outside what a day depends on; and per owner day d and dep_day d + 1, d + 2 whose part 2 that reach lets d
-- depend on, the fingerprint of the visits of parts 2-3 of dep_day that d's late caregivers reach
-- (etl.late_partner_rows, schema 017; (0, 0) when none). freshness/record_fingerprints writes what this returns.
WITH reach AS (
    -- per owner day, the reach of its owners (schema 011): the latest end of its visits that can be eligible plus 2 h
    SELECT o.visit_date AS day, max(o.end_ts) + interval '2 hours' AS reach
    FROM etl.owner_ends o
    WHERE o.visit_date = ANY(%(days)s::date[])
    GROUP BY o.visit_date
),
late_rows AS MATERIALIZED (
    -- per owner day d, the visits of parts 2-3 of d + 1 and d + 2 that its late caregivers reach (schema 017): one
    -- pass over the owner days' late owners and one over the staged days, once (as a join's inner side, the view
    -- was evaluated again per owner day). Filtered on the list of staged days only: a date range beside it (redundant)
    -- multiplied the two selectivities, the visits' scan estimated 28x too few at 1M visits, and about one planning
    -- in 40 then merged on the date alone with the caregiver in the join filter (1.4-2.9 s instead of 0.1 s)
    SELECT l.day, l.dep_day, l.visit_id, l.hash
    FROM etl.late_partner_rows l
    WHERE l.day = ANY(%(days)s::date[])
      AND l.dep_day = ANY(%(stage_days)s::date[])
),
conflict_visits AS (
    SELECT m.conflict_date, p.visit_id, v.visit_date, v.part
    FROM conflict.conflict_visit_maps m
    CROSS JOIN LATERAL (VALUES (m.visit_id), (m.conflict_visit_id)) AS p (visit_id)
    LEFT JOIN (SELECT r.visit_id, r.visit_date, etl.part_of(r.before_22h, r.before_2h, r.before_26h) AS part
               FROM etl.visit_part_rows r) AS v
           ON v.visit_id = p.visit_id
    WHERE m.status = 'ACTIVE' AND m.conflict_date = ANY(%(days)s::date[])
),
far AS (
    SELECT DISTINCT c.conflict_date AS day, c.visit_id
    FROM conflict_visits c
    LEFT JOIN reach r ON r.day = c.conflict_date
    WHERE c.visit_date IS NULL  -- deleted, or with no date: in no day, followed as a far visit
       OR c.visit_date NOT BETWEEN c.conflict_date AND c.conflict_date + %(partner_days)s
       OR c.part > etl.reach_part_limit(c.visit_date - c.conflict_date, r.reach, c.visit_date)
       -- from part 2 of a later day on (d + 1 or d + 2 below the limit, both staged days), d depends only on what its
       -- late caregivers reach
       OR (c.visit_date > c.conflict_date AND c.part >= 2
           AND NOT EXISTS (SELECT 1 FROM late_rows l WHERE l.day = c.conflict_date AND l.visit_id = c.visit_id))
),
other_days AS (
    -- the days where visits of the ACTIVE conflicts lie, other than the staged days (few)
    SELECT DISTINCT visit_date AS day FROM conflict_visits
    WHERE visit_date IS NOT NULL AND visit_date <> ALL(%(stage_days)s::date[])
),
counted AS (
    -- the staged days: one scan of their range, grouped by day and the three part edges (etl.visit_part_rows)
    SELECT r.visit_date AS day, etl.part_of(r.before_22h, r.before_2h, r.before_26h) AS part, count(*) AS visits,
           sum(r.hash) AS hash
    FROM etl.visit_part_rows r
    WHERE r.visit_date BETWEEN %(stage_first)s AND %(stage_last)s AND r.visit_date = ANY(%(stage_days)s::date[])
    GROUP BY r.visit_date, r.before_22h, r.before_2h, r.before_26h
    UNION ALL
    SELECT d.day, etl.part_of(c.before_22h, c.before_2h, c.before_26h), c.visits, c.hash
    FROM other_days d
    CROSS JOIN LATERAL (SELECT r.before_22h, r.before_2h, r.before_26h, count(*) AS visits, sum(r.hash) AS hash
                        FROM etl.visit_part_rows r
                        WHERE r.visit_date = d.day
                        GROUP BY r.before_22h, r.before_2h, r.before_26h) c
),
late AS (
    -- per owner day d and dep_day d + 1, d + 2 whose part 2 d's reach lets it depend on: the visits of parts 2-3
    -- of dep_day that d's late caregivers reach
    SELECT o.day, o.day + k AS dep_day, count(l.visit_id) AS visits, coalesce(sum(l.hash), 0) AS hash
    FROM unnest(%(days)s::date[]) AS o (day)
    CROSS JOIN generate_series(1, 2) AS k
    LEFT JOIN reach r ON r.day = o.day
    LEFT JOIN late_rows l ON l.day = o.day AND l.dep_day = o.day + k
    WHERE etl.reach_part_limit(k, r.reach, o.day + k) >= 2
    GROUP BY o.day, k
),
read_days AS (
    SELECT d AS day FROM unnest(%(stage_days)s::date[]) AS d
    UNION ALL
    SELECT day FROM other_days
)
SELECT d.day, p.part::smallint AS part, coalesce(c.visits, 0) AS visits, coalesce(c.hash, 0) AS hash,
       NULL::bigint AS far_visit_id, NULL::timestamp AS reach, NULL::date AS dep_day
FROM read_days d
CROSS JOIN generate_series(0, 3) AS p (part)
LEFT JOIN counted c ON c.day = d.day AND c.part = p.part
UNION ALL
SELECT f.day, NULL, NULL, NULL, f.visit_id, NULL, NULL FROM far f
UNION ALL
SELECT r.day, NULL, NULL, NULL, NULL, r.reach, NULL FROM reach r
UNION ALL
SELECT l.day, NULL, l.visits, l.hash, NULL, NULL, l.dep_day FROM late l;
