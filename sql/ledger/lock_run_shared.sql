-- A chunk shares the run row for its transaction: staging and reconciliation wait for it.
SELECT status, staged_at FROM etl.runs WHERE run_id = %(run_id)s FOR SHARE;
