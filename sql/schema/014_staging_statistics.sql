-- Version 14: the run's staging partition is analysed with a statistics target of 30 (a sample of 9,000 rows)
-- instead of the server's default 100 (30,000 rows). The statistics only have to keep the chunks' queries off a
-- nested-loop plan for a freshly loaded table (their plan shapes are pinned otherwise: tasks.STATEMENT_SETTINGS and
-- the LATERAL lookups of apply_chunk_conflicts.sql); at 62k staged rows, a stale run's staging, ANALYZE took 27 ms at
-- the default and 8 ms at 30, of a staging that is on a stale run's critical path (docs/freshness.md).
CREATE OR REPLACE FUNCTION etl.analyze_staged_partition(p_run_id bigint) RETURNS void
LANGUAGE plpgsql SET default_statistics_target = 30 AS $$
BEGIN
    IF to_regclass(format('etl.%I', etl.staged_partition(p_run_id))) IS NOT NULL THEN
        EXECUTE format('ANALYZE etl.%I (run_id, visit_id, caregiver_id, provider_id, visit_date, start_ts)',
                       etl.staged_partition(p_run_id));
    END IF;
END $$;
