-- Version 5: the executions that drove a run. A redrive reopens its run in place (sql/ledger/reopen_run.sql
-- only bumps etl.runs.redrives), so its execution name and start time were recorded nowhere; the run report
-- marks each one on the timeline. One row per execution: the first (kind 'run') and every redrive.
CREATE TABLE etl.run_executions (
    run_id         bigint NOT NULL REFERENCES etl.runs (run_id) ON DELETE CASCADE,
    execution_name text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('run', 'redrive')),
    started_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, execution_name)
);
