-- Refresh planner statistics after staging: a freshly loaded table without them gets a nested-loop plan.
-- Only the run's partition: the chunks' queries are pruned to it and plan with its statistics.
SELECT etl.analyze_staged_partition(%(run_id)s);
