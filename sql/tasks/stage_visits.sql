-- Task 01: stage the eligible visits a run needs for [range_start, range_end] and sync its rejected visits.
-- Staged: every non-cancelled, eligible visit dated from range_start to partner_end (partners of the last
-- days, up to their cutoff), plus the visits of ACTIVE conflicts dated in the range (so a chunk can tell a pair
-- that moved to another date from one that no longer conflicts). Rejected: the ineligible, non-cancelled visits
-- dated in the range, checked in the order the contract gives (a visit lacking a value the rules need first:
-- INVALID_RECORD); stale rejections in the range are removed. Infinite timestamps follow the same rules.
-- A stale run passes its owner days (days) and their partner days (stage_days): only those are read and synced.
-- Of a partner day, only the visits starting at or before its cutoff can pair with an owner (stage_before for a
-- stale run, NULL for an owner day; partner_before for the PARTNER_DAYS days after a plain run's window): the
-- latest end of the owners before it plus 2 h, in this snapshot (tasks.partner_cutoff, owner_last_ends.sql). And of
-- those, only the visits of a caregiver with an owner before it, starting by that caregiver's latest end plus 2 h
-- (partner_reach; a partner shares its owner's caregiver), or a visit of those ACTIVE conflicts.
WITH conflict_visits AS MATERIALIZED (
    -- both visits of every ACTIVE conflict dated on the owner days, once each
    SELECT DISTINCT p.visit_id
    FROM conflict.conflict_visit_maps m
    CROSS JOIN LATERAL (VALUES (m.visit_id), (m.conflict_visit_id)) AS p (visit_id)
    WHERE m.status = 'ACTIVE' AND m.conflict_date BETWEEN %(range_start)s AND %(range_end)s
      AND (%(days)s::date[] IS NULL OR m.conflict_date = ANY(%(days)s::date[]))
),
partner_reach AS (
    -- per caregiver and partner day (stage_partner_days: the days read after owner days that are not owner days
    -- themselves): the latest end of that caregiver's late owners on the owner days within partner_days before it
    -- (late_days: those that partner days follow, tasks/owner_last_ends), plus 2 h. A late owner ends at 22:00 or
    -- later: only such an owner can reach a visit starting on or after the midnight that begins a later day (22:00
    -- plus 2 h). Every partner of an owner starts by then (tasks.TRAVEL_REACH).
    SELECT o.caregiver_id, p.day, max(o.end_ts) + interval '2 hours' AS reach
    FROM etl.owner_ends o
    JOIN unnest(%(stage_partner_days)s::date[]) AS p (day)
      ON o.visit_date BETWEEN p.day - %(partner_days)s AND p.day - 1
    WHERE o.visit_date = ANY(%(late_days)s::date[])
      AND o.end_ts >= o.visit_date + interval '22 hours'
    GROUP BY o.caregiver_id, p.day
),
wanted AS (
    SELECT v.*, true AS in_range,
           CASE WHEN %(days)s::date[] IS NULL THEN v.visit_date > %(range_end)s
                ELSE v.visit_date <> ALL(%(days)s::date[]) END AS partner
    FROM analytics.visits v
    WHERE v.visit_date BETWEEN %(range_start)s AND %(partner_end)s
      AND (%(stage_days)s::date[] IS NULL
           OR (v.visit_date = ANY(%(stage_days)s::date[])
               AND coalesce(coalesce(v.clock_in, v.scheduled_start)
                            <= (%(stage_before)s::timestamp[])[array_position(%(stage_days)s::date[], v.visit_date)],
                            true)))
      AND (v.visit_date <= %(range_end)s
           OR coalesce(coalesce(v.clock_in, v.scheduled_start)
                       <= (%(partner_before)s::timestamp[])[v.visit_date - %(range_end)s::date], true))
    UNION ALL
    SELECT v.*, false, false
    FROM analytics.visits v
    WHERE v.visit_id IN (SELECT c.visit_id FROM conflict_visits c)
      AND NOT coalesce(  -- exactly the first branch's condition: each visit is read once
              v.visit_date BETWEEN %(range_start)s AND %(partner_end)s
              AND (%(stage_days)s::date[] IS NULL
                   OR (v.visit_date = ANY(%(stage_days)s::date[])
                       AND coalesce(coalesce(v.clock_in, v.scheduled_start)
                                    <= (%(stage_before)s::timestamp[])[array_position(%(stage_days)s::date[],
                                                                                       v.visit_date)],
                                    true)))
              AND (v.visit_date <= %(range_end)s
                   OR coalesce(coalesce(v.clock_in, v.scheduled_start)
                               <= (%(partner_before)s::timestamp[])[v.visit_date - %(range_end)s::date], true)),
              false)
),
effective AS (
    SELECT w.in_range, w.partner, w.visit_id, w.caregiver_id, w.provider_id, w.visit_date,
           coalesce(w.clock_in, w.scheduled_start) AS start_ts,
           coalesce(w.clock_out, w.scheduled_end) AS end_ts,
           (w.clock_in_lat BETWEEN -90 AND 90 AND w.clock_in_lon BETWEEN -180 AND 180) AS located,
           w.clock_in_lat, w.clock_in_lon
    FROM wanted w
    WHERE w.status IS DISTINCT FROM 'CANCELLED'  -- only CANCELLED visits are ignored; a NULL status is not
),
-- Not materialized: computed again for the rejections (a cheap scan) instead of writing every staged row to a
-- temporary tuplestore first (6 per cent faster at 650k visits; docs/benchmarks.md).
classified AS NOT MATERIALIZED (
    SELECT e.*,
           CASE
               WHEN e.caregiver_id IS NULL OR e.provider_id IS NULL OR e.visit_date IS NULL
                    OR e.start_ts IS NULL OR e.end_ts IS NULL THEN 'INVALID_RECORD'
               WHEN e.end_ts <= e.start_ts THEN 'NON_POSITIVE_DURATION'
               -- not end - start > 24 h: that cannot be evaluated for an infinite end or start
               WHEN e.end_ts > e.start_ts + interval '24 hours' THEN 'DURATION_OVER_24H'
               WHEN e.start_ts::date NOT BETWEEN e.visit_date - 1 AND e.visit_date + 1
                   THEN 'START_OUTSIDE_VISIT_DATE'
           END AS reason
    FROM effective e
),
staged AS (
    INSERT INTO etl.staged_visits (run_id, visit_id, caregiver_id, provider_id, visit_date, start_ts, end_ts,
                                   lat, lon)
    SELECT %(run_id)s, c.visit_id, c.caregiver_id, c.provider_id, c.visit_date, c.start_ts, c.end_ts,
           CASE WHEN c.located THEN c.clock_in_lat END,
           CASE WHEN c.located THEN c.clock_in_lon END
    FROM classified c
    LEFT JOIN partner_reach r ON c.partner AND r.caregiver_id = c.caregiver_id AND r.day = c.visit_date
    WHERE c.reason IS NULL
      AND (NOT c.partner OR c.start_ts < c.visit_date::timestamp OR c.start_ts <= r.reach
           OR c.visit_id IN (SELECT x.visit_id FROM conflict_visits x))
    -- no RETURNING: keeping 650k returned rows to count them cost 0.3 s; tasks/count_staged_visits counts the
    -- partition afterwards in 0.06-0.1 s (a data-modifying CTE runs to completion whether or not it is read)
),
rejected AS (
    SELECT c.visit_id, c.visit_date, c.reason
    FROM classified c
    -- in_range: a visit of the first branch. The second's are never dated on an owner day (they fail the first
    -- branch's condition, which holds for every visit of an owner day), and the planner drops the branch here
    -- instead of evaluating it again (0.2 s at 1M visits).
    WHERE c.in_range AND c.reason IS NOT NULL AND c.visit_date BETWEEN %(range_start)s AND %(range_end)s
      AND (%(days)s::date[] IS NULL OR c.visit_date = ANY(%(days)s::date[]))
),
recorded AS (
    INSERT INTO conflict.rejected_visits AS r (visit_id, visit_date, reason, run_id)
    SELECT visit_id, visit_date, reason, %(run_id)s FROM rejected
    ON CONFLICT (visit_id) DO UPDATE
        SET visit_date = EXCLUDED.visit_date, reason = EXCLUDED.reason, run_id = EXCLUDED.run_id
        WHERE (r.visit_date, r.reason) IS DISTINCT FROM (EXCLUDED.visit_date, EXCLUDED.reason)
    RETURNING 1
),
cleared AS (
    DELETE FROM conflict.rejected_visits r
    -- a set difference (hashed, or sorted when the planner thinks it too large to hash), never a lookup per row
    -- whose cost depends on the estimates: a nested-loop anti-join over the rejections (a stale run's few days,
    -- estimated at one row: 56 ms for 646 rejections), or a NOT IN its plan could not hash (a full run's, estimated
    -- at every visit: seconds for 9,000), both quadratic in them
    WHERE r.visit_id IN (SELECT k.visit_id FROM conflict.rejected_visits k
                         WHERE k.visit_date BETWEEN %(range_start)s AND %(range_end)s
                           AND (%(days)s::date[] IS NULL OR k.visit_date = ANY(%(days)s::date[]))
                         EXCEPT
                         SELECT x.visit_id FROM rejected x)
    RETURNING 1
)
SELECT r.rejected_rows, r.invalid_rows,
       (SELECT count(*) FROM recorded) AS rejections_written,
       (SELECT count(*) FROM cleared) AS rejections_cleared
FROM (SELECT count(*) AS rejected_rows, count(*) FILTER (WHERE reason = 'INVALID_RECORD') AS invalid_rows
      FROM rejected) r;
