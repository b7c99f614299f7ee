-- Heartbeat: the run's driver or one of its workers is alive.
UPDATE etl.runs SET heartbeat_at = now() WHERE run_id = %(run_id)s AND status = 'RUNNING';
