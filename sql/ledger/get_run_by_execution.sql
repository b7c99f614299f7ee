-- The run an execution created (a retried ValidateConfig finds its own run).
SELECT * FROM etl.runs WHERE execution_name = %(execution_name)s;
