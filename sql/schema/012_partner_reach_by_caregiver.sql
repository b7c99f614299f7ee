-- Version 12: the owners' ends per caregiver. A partner shares its owner's caregiver, so of a partner day a staging
-- needs only the visits of the caregivers with an owner before it, each up to that caregiver's latest end plus 2 h
-- (tasks/stage_visits, partner_reach): in the benchmark's stale run, 550 of the 30,000 visits its partner days' cutoffs
-- let through. The view keeps its two columns and rules (schema 011) and gains the caregiver, after them.
CREATE OR REPLACE VIEW etl.owner_ends AS
SELECT v.visit_date, coalesce(v.clock_out, v.scheduled_end) AS end_ts, v.caregiver_id
FROM analytics.visits v
WHERE v.status IS DISTINCT FROM 'CANCELLED'
  AND coalesce(v.clock_in, v.scheduled_start) < v.visit_date + 2
  AND coalesce(v.clock_out, v.scheduled_end) > coalesce(v.clock_in, v.scheduled_start)
  AND coalesce(v.clock_out, v.scheduled_end) <= coalesce(v.clock_in, v.scheduled_start) + interval '24 hours';
