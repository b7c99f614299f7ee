-- The run a report is about, with what its header, tiles and timeline show.
SELECT run_id, execution_name, trigger, executor, status, window_start, window_end, redrives,
       created_at, staged_at, finished_at, visits, inserted, updated, resolved, reopened, unchanged,
       rejected_rows, error
  FROM etl.runs
 WHERE run_id = %(run_id)s;
