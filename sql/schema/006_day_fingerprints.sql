-- Version 6: change-aware runs (docs/freshness.md). Every staging records, in its own snapshot, a fingerprint of
-- each day of analytics.visits it read (etl.source_fingerprints, one row per run, staging and day); a chunk that
-- commits marks its days computed from that staging (etl.day_state, one row per day: the latest computation).
-- A stale run records which days it selected and why (etl.run_days).

-- One visit row as a 64-bit hash of every column the contract reads (not patient_id, not updated_at): the record
-- hash of PostgreSQL 14+ (each column hashed by its type's binary hash, so no session setting such as DateStyle or
-- extra_float_digits changes it; about 4 times faster than hashing the row's text). A plain SQL function, inlined.
CREATE FUNCTION etl.visit_row_hash(v analytics.visits) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hash_record_extended(row(v.visit_id, v.caregiver_id, v.provider_id, v.visit_date, v.scheduled_start,
                                    v.scheduled_end, v.clock_in, v.clock_out, v.clock_in_lat, v.clock_in_lon,
                                    v.status), 0)
$$;

ALTER TABLE etl.runs ADD COLUMN stale boolean NOT NULL DEFAULT false;

-- Per run and staging (stage_no = the run's redrives when it staged), the fingerprint of every day it read:
-- the number of visit rows and the sum of their hashes (cancelled visits included).
CREATE TABLE etl.source_fingerprints (
    run_id   bigint NOT NULL REFERENCES etl.runs (run_id),
    stage_no integer NOT NULL,
    day      date NOT NULL,
    visits   bigint NOT NULL,
    hash     numeric NOT NULL,
    PRIMARY KEY (run_id, stage_no, day)
);

-- Per day, the latest computation of its conflicts: by which run, chunk and staging, and when it committed.
CREATE TABLE etl.day_state (
    day         date PRIMARY KEY,
    run_id      bigint NOT NULL REFERENCES etl.runs (run_id),
    chunk_id    integer NOT NULL,
    stage_no    integer NOT NULL,
    computed_at timestamptz NOT NULL
);

-- The days a stale run selected, and why: its own source changed, a day it depends on changed, or never computed.
CREATE TABLE etl.run_days (
    run_id          bigint NOT NULL REFERENCES etl.runs (run_id),
    day             date NOT NULL,
    reason          text NOT NULL CHECK (reason IN ('CHANGED', 'DEPENDENT', 'NEVER')),
    cause_day       date,
    previous_run_id bigint,
    PRIMARY KEY (run_id, day)
);

-- Per run and staging, the visits of the ACTIVE conflicts dated on an owner day that lay, in its snapshot, outside
-- the day and its partner days (a pair that moved to another date but may still conflict): the only visits whose
-- later edits can change the day without changing one of its partner days (docs/freshness.md, rule 2).
CREATE TABLE etl.source_far_visits (
    run_id   bigint NOT NULL REFERENCES etl.runs (run_id),
    stage_no integer NOT NULL,
    day      date NOT NULL,
    visit_id bigint NOT NULL,
    PRIMARY KEY (run_id, stage_no, day, visit_id)
);
