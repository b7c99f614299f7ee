-- A stale run: its chunks cover only the days it selected (etl.run_days), so zero chunks can be a success.
UPDATE etl.runs SET stale = true WHERE run_id = %(run_id)s AND NOT stale RETURNING run_id;
