-- Refresh the conflict map's statistics after staging when it changed enough since its last ANALYZE (schema 010):
-- with stale ones (a map filled since the last ANALYZE) a chunk's resolve step once planned a nested-loop anti
-- join over its conflicts, quadratic in its rows.
SELECT etl.analyze_conflict_maps_if_changed() AS analysed;
