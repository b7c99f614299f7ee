-- Version 16: how much the conflict map changed since its last ANALYZE is counted from the ledger, not from the
-- statistics system. A run's reconciliation now analyses the map when its chunks changed it enough
-- (tasks.reconcile_run), but the statistics system reports a backend's writes late (each backend flushes its counts
-- at most once a second, when idle): the chunks' inserts arrived after that ANALYZE had reset the count, so the next
-- staging found them "since" it and analysed the map again (0.12 s of the first stale run after a full run of 58,705
-- conflicts). The ledger holds every succeeded chunk's writes, exact, and when it committed; the time of the last
-- ANALYZE is reported by the backend that ran it, at once. Only the pipeline's chunks write the map. The rule is
-- otherwise version 10's: never analysed, its size in pages 10 per cent (and a page) off, or more than 50 rows + 10
-- per cent of it written since.
CREATE OR REPLACE FUNCTION etl.analyze_conflict_maps_if_changed() RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    analysed timestamptz;
    written bigint;
    seen_pages integer;
    seen_tuples real;
    pages bigint := pg_relation_size('conflict.conflict_visit_maps') / current_setting('block_size')::integer;
BEGIN
    SELECT c.relpages, c.reltuples INTO seen_pages, seen_tuples
      FROM pg_class c WHERE c.oid = 'conflict.conflict_visit_maps'::regclass;
    SELECT greatest(s.last_analyze, s.last_autoanalyze) INTO analysed
      FROM pg_stat_user_tables s WHERE s.relid = 'conflict.conflict_visit_maps'::regclass;
    SELECT coalesce(sum(coalesce(k.inserted, 0) + coalesce(k.updated, 0) + coalesce(k.resolved, 0)
                        + coalesce(k.reopened, 0)), 0)
      INTO written
      FROM etl.chunks k
     WHERE k.status = 'SUCCEEDED' AND k.finished_at >= analysed;
    IF seen_tuples < 0 OR analysed IS NULL                -- never analysed (or the statistics were reset)
       OR abs(pages - seen_pages) > 0.1 * seen_pages + 1  -- grew or shrank (includes a first fill from 0 pages)
       OR written > 50 + 0.1 * greatest(seen_tuples, 0) THEN
        ANALYZE conflict.conflict_visit_maps;
        RETURN true;
    END IF;
    RETURN false;
END
$$;
