-- Refresh planner statistics after staging: a freshly loaded table without them gets a nested-loop plan.
ANALYZE etl.staged_visits;
