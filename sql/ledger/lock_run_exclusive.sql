-- Staging and reconciliation take the run row exclusively: no chunk runs while staging changes.
SELECT status, staged_at FROM etl.runs WHERE run_id = %(run_id)s FOR UPDATE;
