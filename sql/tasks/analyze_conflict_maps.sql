-- Refresh the conflict map's statistics after staging: with stale ones (a map filled since the last
-- ANALYZE) a chunk's resolve step planned a nested-loop anti join over its conflicts, quadratic in its rows.
ANALYZE conflict.conflict_visit_maps;
