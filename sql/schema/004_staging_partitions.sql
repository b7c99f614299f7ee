-- Version 4: a run's staging is its own partition, loaded without indexes, indexed once, dropped whole.
-- Task 01 used to insert into one table with three indexes maintained row by row (about 60% of staging at
-- 650k visits) and to clear it with DELETE (dead rows until vacuum). Now etl.staged_visits is partitioned by
-- run_id and has no indexes of its own: staging creates the run's partition (UNLOGGED, as in version 3),
-- inserts through the parent, then builds the partition's primary key and indexes in one pass each and
-- analyses it, all in the staging transaction; clearing drops the partition. Readers are unchanged: they name
-- etl.staged_visits and the run, and the planner prunes to the run's partition, with that partition's
-- indexes and statistics. The partition and index names come from etl.staged_partition (format('%I')).
-- An UNLOGGED partition is emptied by crash recovery like the UNLOGGED table was: Task 02's check against its
-- plan's count (tasks._check_staging) still catches it. Staging is a copy the pipeline rebuilds at will: the
-- old table is dropped; a run in flight across this migration finds no staged rows and fails its chunks,
-- writing nothing, and a redrive restages it.
DROP TABLE etl.staged_visits;

CREATE TABLE etl.staged_visits (
    run_id       bigint NOT NULL,
    visit_id     bigint NOT NULL,
    caregiver_id bigint NOT NULL,
    provider_id  integer NOT NULL,
    visit_date   date NOT NULL,
    start_ts     timestamp NOT NULL,
    end_ts       timestamp NOT NULL,
    lat          double precision,
    lon          double precision
) PARTITION BY LIST (run_id);

-- The name of a run's partition (in schema etl) and of its indexes, with the given suffix.
CREATE FUNCTION etl.staged_partition(p_run_id bigint, p_suffix text DEFAULT '') RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT 'staged_visits_' || p_run_id || p_suffix $$;

-- Before loading: an empty UNLOGGED partition for the run, without indexes.
CREATE FUNCTION etl.create_staged_partition(p_run_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE UNLOGGED TABLE etl.%I PARTITION OF etl.staged_visits FOR VALUES IN (%s)',
                   etl.staged_partition(p_run_id), p_run_id);
END $$;

-- After loading: the indexes Task 02 reads, each built in one sorted pass.
--   primary key: the moved-pair lookups; band (caregiver, start): the partner range scans, linear in a
--   chunk's visits; date: a chunk's owners.
CREATE FUNCTION etl.index_staged_partition(p_run_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t text := etl.staged_partition(p_run_id);
BEGIN
    EXECUTE format('ALTER TABLE etl.%I ADD CONSTRAINT %I PRIMARY KEY (run_id, visit_id)',
                   t, etl.staged_partition(p_run_id, '_pkey'));
    EXECUTE format('CREATE INDEX %I ON etl.%I (run_id, caregiver_id, start_ts)',
                   etl.staged_partition(p_run_id, '_band_idx'), t);
    EXECUTE format('CREATE INDEX %I ON etl.%I (run_id, visit_date)',
                   etl.staged_partition(p_run_id, '_date_idx'), t);
END $$;

-- The statistics the chunks plan with: of the run's partition (queries pruned to it use its own).
CREATE FUNCTION etl.analyze_staged_partition(p_run_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass(format('etl.%I', etl.staged_partition(p_run_id))) IS NOT NULL THEN
        EXECUTE format('ANALYZE etl.%I', etl.staged_partition(p_run_id));
    END IF;
END $$;

-- Clearing a run's staging (restage, end, abort, abandon): the partition is dropped whole.
CREATE FUNCTION etl.drop_staged_partition(p_run_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TABLE IF EXISTS etl.%I', etl.staged_partition(p_run_id));
END $$;
