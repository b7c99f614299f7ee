-- Heartbeat: the run's driver or one of its workers is alive. Best effort: skipped while staging or
-- reconciliation holds the run row, so a heartbeat never waits.
UPDATE etl.runs SET heartbeat_at = now()
 WHERE run_id = (SELECT run_id FROM etl.runs
                  WHERE run_id = %(run_id)s AND status = 'RUNNING'
                    FOR NO KEY UPDATE SKIP LOCKED);
