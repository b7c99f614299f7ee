-- Cancel the statements the chunks of a run are running now (their transactions roll back): a stopping
-- driver's workers commit nothing half-done. Chunks name themselves in application_name.
SELECT count(*) FILTER (WHERE pg_cancel_backend(a.pid)) AS cancelled
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
  AND a.application_name LIKE 'conflict-map run ' || %(run_id)s || ' chunk %%';
