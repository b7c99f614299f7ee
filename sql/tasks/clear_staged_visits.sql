-- Remove the staged visits of one run (before restaging it, and once the run has ended).
DELETE FROM etl.staged_visits WHERE run_id = %(run_id)s;
