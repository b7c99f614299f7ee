-- Record how a run's plan was sized (fixed caps, or throughput measured by earlier runs).
UPDATE etl.runs SET sizing = %(sizing)s, heartbeat_at = now() WHERE run_id = %(run_id)s;
