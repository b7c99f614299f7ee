-- In the staging snapshot, before the load: per owner day that partner days follow, the latest end of its visits
-- that can be eligible, by the two rules an owner's reach rests on: it starts before its date + 2 days (start date
-- within a day of visit_date) and lasts more than nothing and at most 24 h. Every partner of such an owner starts at
-- most 2 h after that end (tasks.TRAVEL_REACH), so a partner day is read only up to the latest end of the owners
-- before it plus 2 h (tasks.partner_cutoff), not up to the bound that holds for any data (tasks.PARTNER_REACH).
-- A visit ineligible for another reason only makes the end later: more is read, never less. Finite by the rules.
SELECT v.visit_date AS day, max(coalesce(v.clock_out, v.scheduled_end)) AS last_end
FROM analytics.visits v
WHERE v.visit_date = ANY(%(days)s::date[])
  AND v.status IS DISTINCT FROM 'CANCELLED'
  AND coalesce(v.clock_in, v.scheduled_start) < v.visit_date + 2
  AND coalesce(v.clock_out, v.scheduled_end) > coalesce(v.clock_in, v.scheduled_start)
  AND coalesce(v.clock_out, v.scheduled_end) <= coalesce(v.clock_in, v.scheduled_start) + interval '24 hours'
GROUP BY v.visit_date;
