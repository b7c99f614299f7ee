-- Refresh the conflict map's statistics when it changed enough since its last ANALYZE (schema 010): at the end of a
-- run (tasks.reconcile_run), so that the run whose chunks changed the map pays for it, not the next run's staging,
-- freshness check and fingerprint read, which would plan against stale statistics meanwhile; and after staging, for
-- a map changed otherwise since (a run that ended before its reconciliation). With stale ones (a map filled since
-- the last ANALYZE) a chunk's resolve step once planned a nested-loop anti join over its conflicts, quadratic in
-- its rows.
SELECT etl.analyze_conflict_maps_if_changed() AS analysed;
