-- The active run, if any.
SELECT * FROM etl.runs WHERE status = 'RUNNING';
