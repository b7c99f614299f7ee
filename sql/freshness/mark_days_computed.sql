-- A chunk commits: its days are now computed from the run's current staging (in the chunk's own transaction,
-- so a day counts as computed exactly when its conflicts were written). Its days: those of its range, or only the
-- listed ones (days: etl.chunks.owned_days, schema 15).
INSERT INTO etl.day_state (day, run_id, chunk_id, stage_no, computed_at)
SELECT d::date, r.run_id, %(chunk_id)s, r.redrives, now()
FROM etl.runs r
CROSS JOIN generate_series(%(chunk_start)s::date, %(chunk_end)s::date, interval '1 day') AS d
WHERE r.run_id = %(run_id)s AND (%(days)s::date[] IS NULL OR d::date = ANY(%(days)s::date[]))
ON CONFLICT (day) DO UPDATE
    SET run_id = EXCLUDED.run_id, chunk_id = EXCLUDED.chunk_id, stage_no = EXCLUDED.stage_no,
        computed_at = EXCLUDED.computed_at;
