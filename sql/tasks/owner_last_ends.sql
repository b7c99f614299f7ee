-- In the staging snapshot, before the load: per owner day that partner days follow, the latest end of its visits
-- that can be eligible (etl.owner_ends, schema 011). Every partner of such an owner starts at most 2 h after that end
-- (tasks.TRAVEL_REACH), so a partner day is read only up to the latest end of the owners before it plus 2 h
-- (tasks.partner_cutoff), not up to the bound that holds for any data (tasks.PARTNER_REACH). And its late owners,
-- those ending at 22:00 or later, with their caregivers: only such an owner can reach a visit that starts on or after
-- the midnight that begins a later day (22:00 plus 2 h), so of a partner day's visits starting then, the load keeps
-- those its caregiver's late owners reach (stage_visits.sql, partner_reach, which takes each caregiver's latest end);
-- the earlier ones it keeps all. Grouped by day only: grouping every owner by caregiver as well cost 50 ms of a stale
-- run's 6 owner days, for the thousand late owners a day that matter.
SELECT o.visit_date AS day, max(o.end_ts) AS last_end,
       coalesce(array_agg(o.caregiver_id) FILTER (WHERE o.end_ts >= o.visit_date + interval '22 hours'), '{}')
           AS late_caregivers,
       coalesce(array_agg(o.end_ts) FILTER (WHERE o.end_ts >= o.visit_date + interval '22 hours'), '{}') AS late_ends
FROM etl.owner_ends o
WHERE o.visit_date = ANY(%(days)s::date[])
GROUP BY o.visit_date;
