-- Schemas and tables of the conflict-map pipeline, version 1.
-- analytics.visits is owned upstream: it is created here only where it does not exist (local use, tests);
-- the pipeline may add indexes to it, never columns.

CREATE SCHEMA IF NOT EXISTS analytics;
CREATE SCHEMA IF NOT EXISTS conflict;
CREATE SCHEMA IF NOT EXISTS etl;

CREATE TABLE IF NOT EXISTS analytics.visits (
    visit_id        bigint PRIMARY KEY,
    caregiver_id    bigint NOT NULL,
    provider_id     integer NOT NULL,
    patient_id      bigint NOT NULL,
    visit_date      date NOT NULL,
    scheduled_start timestamp NOT NULL,
    scheduled_end   timestamp NOT NULL,
    clock_in        timestamp,
    clock_out       timestamp,
    clock_in_lat    double precision,
    clock_in_lon    double precision,
    status          text NOT NULL,
    updated_at      timestamp NOT NULL DEFAULT now()
);

-- Staging reads a window by service date.
CREATE INDEX IF NOT EXISTS visits_visit_date_idx ON analytics.visits (visit_date);

CREATE TABLE conflict.conflict_visit_maps (
    visit_id             bigint NOT NULL,
    conflict_visit_id    bigint NOT NULL,
    caregiver_id         bigint NOT NULL,
    conflict_date        date NOT NULL,
    conflict_type        text NOT NULL CHECK (conflict_type IN ('OVERLAP', 'TRAVEL')),
    overlap_minutes      numeric(10, 2),
    gap_minutes          numeric(10, 2),
    distance_miles       numeric(10, 2),
    status               text NOT NULL CHECK (status IN ('ACTIVE', 'RESOLVED')),
    first_detected_run_id bigint NOT NULL,
    last_changed_run_id  bigint NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    resolved_at          timestamptz,
    PRIMARY KEY (visit_id, conflict_visit_id),
    CHECK (visit_id < conflict_visit_id),
    CHECK ((status = 'RESOLVED') = (resolved_at IS NOT NULL))
);

-- A chunk resolves the ACTIVE rows of its conflict dates.
CREATE INDEX conflict_visit_maps_active_date_idx
    ON conflict.conflict_visit_maps (conflict_date) WHERE status = 'ACTIVE';

CREATE TABLE conflict.rejected_visits (
    visit_id   bigint PRIMARY KEY,
    visit_date date NOT NULL,
    reason     text NOT NULL CHECK (reason IN ('NON_POSITIVE_DURATION', 'DURATION_OVER_24H',
                                               'START_OUTSIDE_VISIT_DATE')),
    run_id     bigint NOT NULL
);

CREATE INDEX rejected_visits_visit_date_idx ON conflict.rejected_visits (visit_date);

-- The run ledger: one row per run.
CREATE TABLE etl.runs (
    run_id          bigserial PRIMARY KEY,
    execution_name  text NOT NULL UNIQUE,
    trigger         text NOT NULL,
    executor        text,
    window_start    date NOT NULL,
    window_end      date NOT NULL CHECK (window_end >= window_start),
    status          text NOT NULL CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED', 'ABANDONED')),
    chunk_days      integer NOT NULL,
    max_chunk_rows  integer NOT NULL,
    max_concurrency integer NOT NULL,
    redrives        integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    staged_at       timestamptz,
    finished_at     timestamptz,
    heartbeat_at    timestamptz NOT NULL DEFAULT now(),
    staged_rows     bigint,
    rejected_rows   bigint,
    chunks_planned  integer,
    visits          bigint,
    inserted        bigint,
    updated         bigint,
    resolved        bigint,
    reopened        bigint,
    unchanged       bigint,
    error           text
);

-- At most one run is active at a time: the database itself refuses a second one.
CREATE UNIQUE INDEX runs_one_active_idx ON etl.runs ((true)) WHERE status = 'RUNNING';

-- The run ledger: one row per chunk of a run.
CREATE TABLE etl.chunks (
    run_id         bigint NOT NULL REFERENCES etl.runs (run_id),
    chunk_id       integer NOT NULL,
    chunk_start    date NOT NULL,
    chunk_end      date NOT NULL CHECK (chunk_end >= chunk_start),
    status         text NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'RETRYING', 'SUCCEEDED', 'FAILED',
                                                   'SUPERSEDED')),
    estimated_rows bigint NOT NULL DEFAULT 0,
    attempts       integer NOT NULL DEFAULT 0,
    visits         bigint,
    inserted       bigint,
    updated        bigint,
    resolved       bigint,
    reopened       bigint,
    unchanged      bigint,
    queued_at      timestamptz,
    started_at     timestamptz,
    finished_at    timestamptz,
    duration_ms    bigint,
    error_type     text,
    last_error     text,
    PRIMARY KEY (run_id, chunk_id)
);

-- The run ledger: one row per attempt of a chunk (timeline, retries, workers).
CREATE TABLE etl.chunk_attempts (
    run_id      bigint NOT NULL,
    chunk_id    integer NOT NULL,
    attempt     integer NOT NULL,
    worker      text,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    outcome     text CHECK (outcome IN ('SUCCEEDED', 'FAILED', 'DUPLICATE')),
    error_type  text,
    error       text,
    PRIMARY KEY (run_id, chunk_id, attempt),
    FOREIGN KEY (run_id, chunk_id) REFERENCES etl.chunks (run_id, chunk_id)
);

-- Task 01 output: the eligible visits a run needs, with their effective intervals.
CREATE TABLE etl.staged_visits (
    run_id       bigint NOT NULL,
    visit_id     bigint NOT NULL,
    caregiver_id bigint NOT NULL,
    provider_id  integer NOT NULL,
    visit_date   date NOT NULL,
    start_ts     timestamp NOT NULL,
    end_ts       timestamp NOT NULL,
    lat          double precision,
    lon          double precision,
    PRIMARY KEY (run_id, visit_id)
);

-- Task 02 finds partners with a range scan on this index (linear in the visits of a chunk).
CREATE INDEX staged_visits_band_idx ON etl.staged_visits (run_id, caregiver_id, start_ts);
CREATE INDEX staged_visits_date_idx ON etl.staged_visits (run_id, visit_date);
