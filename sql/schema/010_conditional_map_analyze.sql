-- Version 10: staging analyses the conflict map only when it changed enough since its last ANALYZE, or was never
-- analysed. "Enough" is autovacuum's rule (more than 50 rows + 10 per cent of the table modified, from the
-- statistics system), or its size in pages differing by more than 10 per cent (and a page) from the one its last ANALYZE saw
-- (the statistics system may report a chunk's writes a few seconds late; the size is current). A stale run that
-- recomputes a few days changes a few hundred rows of a map of tens of thousands: its unconditional ANALYZE was
-- 0.2 s of a 4 s run at 1M visits. Task 02's plans do not depend on these statistics for their shape
-- (tasks.STATEMENT_SETTINGS); a first run's empty map and a map a full run filled are analysed as before.
CREATE FUNCTION etl.analyze_conflict_maps_if_changed() RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    modified bigint;
    live bigint;
    seen_pages integer;
    seen_tuples real;
    pages bigint := pg_relation_size('conflict.conflict_visit_maps') / current_setting('block_size')::integer;
BEGIN
    SELECT c.relpages, c.reltuples INTO seen_pages, seen_tuples
      FROM pg_class c WHERE c.oid = 'conflict.conflict_visit_maps'::regclass;
    SELECT s.n_mod_since_analyze, s.n_live_tup INTO modified, live
      FROM pg_stat_user_tables s WHERE s.relid = 'conflict.conflict_visit_maps'::regclass;
    IF seen_tuples < 0                                   -- never analysed
       OR abs(pages - seen_pages) > 0.1 * seen_pages + 1 -- grew or shrank (includes a first fill from 0 pages)
       OR coalesce(modified, 0) > 50 + 0.1 * coalesce(live, 0) THEN
        ANALYZE conflict.conflict_visit_maps;
        RETURN true;
    END IF;
    RETURN false;
END
$$;
