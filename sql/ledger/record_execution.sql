-- Record the execution that now drives a run: the one that began it, or a redrive (the run report marks each).
-- A retried ValidateConfig records nothing new.
INSERT INTO etl.run_executions (run_id, execution_name, kind)
VALUES (%(run_id)s, %(execution_name)s, %(kind)s)
ON CONFLICT (run_id, execution_name) DO NOTHING;
