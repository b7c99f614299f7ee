-- The executions that drove a run (its first and each redrive), in the order they started.
SELECT execution_name, kind, started_at
  FROM etl.run_executions
 WHERE run_id = %(run_id)s
 ORDER BY started_at, execution_name;
