-- A chunk holds the run row for its transaction: staging and reconciliation (FOR UPDATE) wait for it.
-- FOR KEY SHARE, not FOR SHARE: heartbeats (non-key updates) must not wait for chunks, nor chunks for them.
SELECT status, staged_at FROM etl.runs WHERE run_id = %(run_id)s FOR KEY SHARE;
