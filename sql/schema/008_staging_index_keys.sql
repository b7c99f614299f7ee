-- Version 8: a run's staging partition is indexed on the columns its readers search, without run_id, and its
-- indexes are built with more sort memory. A partition holds one run (schema 004), so run_id, the leading
-- column of every index version 4 built, told its entries nothing apart and only made them longer to sort and
-- store; the readers' `run_id = ...` is checked on the row instead. The index builds sort in
-- maintenance_work_mem: 256 MB for their duration (the server's default, 64 MB, spills to disk from about a
-- million staged visits). At 650k visits the three builds went from 1.50 s to 0.72 s (docs/benchmarks.md).
-- ANALYZE samples only the columns the chunks' queries filter, join or sort on (run_id too: without its
-- statistics `run_id = ...` is estimated at 0.5% of the rows). The names stay those of version
-- 4; a partition staged before this version keeps its indexes until it is dropped, and its readers use them.
CREATE OR REPLACE FUNCTION etl.index_staged_partition(p_run_id bigint) RETURNS void
LANGUAGE plpgsql SET maintenance_work_mem = '256MB' AS $$
DECLARE
    t text := etl.staged_partition(p_run_id);
BEGIN
    -- primary key: the moved-pair lookups; band (caregiver, start): the partner range scans, linear in a
    -- chunk's visits; date: a chunk's owners.
    EXECUTE format('ALTER TABLE etl.%I ADD CONSTRAINT %I PRIMARY KEY (visit_id)',
                   t, etl.staged_partition(p_run_id, '_pkey'));
    EXECUTE format('CREATE INDEX %I ON etl.%I (caregiver_id, start_ts)',
                   etl.staged_partition(p_run_id, '_band_idx'), t);
    EXECUTE format('CREATE INDEX %I ON etl.%I (visit_date)',
                   etl.staged_partition(p_run_id, '_date_idx'), t);
END $$;

CREATE OR REPLACE FUNCTION etl.analyze_staged_partition(p_run_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass(format('etl.%I', etl.staged_partition(p_run_id))) IS NOT NULL THEN
        EXECUTE format('ANALYZE etl.%I (run_id, visit_id, caregiver_id, provider_id, visit_date, start_ts)',
                       etl.staged_partition(p_run_id));
    END IF;
END $$;
