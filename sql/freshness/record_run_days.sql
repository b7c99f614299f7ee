-- The days a stale run selected, with why: CHANGED (its source), DEPENDENT (a day it depends on), NEVER computed.
INSERT INTO etl.run_days (run_id, day, reason, cause_day, previous_run_id)
SELECT %(run_id)s, d.day, d.reason, d.cause_day, d.previous_run_id
FROM unnest(%(days)s::date[], %(reasons)s::text[], %(cause_days)s::date[], %(previous_run_ids)s::bigint[])
     AS d (day, reason, cause_day, previous_run_id)
ON CONFLICT (run_id, day) DO NOTHING;
