-- In the staging snapshot, before the load: per owner day that partner days follow, the latest end of its visits
-- that can be eligible (etl.owner_ends, schema 011). Every partner of such an owner starts at most 2 h after that end
-- (tasks.TRAVEL_REACH), so a partner day is read only up to the latest end of the owners before it plus 2 h
-- (tasks.partner_cutoff), not up to the bound that holds for any data (tasks.PARTNER_REACH). The late owners of these
-- days, per caregiver, are read by the load itself (stage_visits.sql, partner_reach): returning them here, a thousand
-- a day, cost a stale run 40 ms of conversions and a 230 kB statement.
SELECT o.visit_date AS day, max(o.end_ts) AS last_end
FROM etl.owner_ends o
WHERE o.visit_date = ANY(%(days)s::date[])
GROUP BY o.visit_date;
