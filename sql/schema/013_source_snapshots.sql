-- Version 13: per staging, the xmin of the snapshot its fingerprints were read in (xid8: every transaction id below
-- it had ended when the snapshot was taken, so a row version written later, or by a transaction still running then,
-- has an id at or above it). It lets the freshness check prove a day unchanged without hashing its rows
-- (freshness/day_states, docs/freshness.md "Proving a day unchanged"): when every row of the day has an older xmin
-- and there are as many as that staging recorded, the rows are the ones it read. A staging recorded before this
-- version has no row here: its days are compared by their hashes, as before.
CREATE TABLE etl.source_snapshots (
    run_id        bigint NOT NULL REFERENCES etl.runs (run_id),
    stage_no      integer NOT NULL,
    snapshot_xmin xid8 NOT NULL,
    PRIMARY KEY (run_id, stage_no)
);

-- The check looks up every staging that recorded a day (the latest proves it); the key leads with the run.
CREATE INDEX source_fingerprints_day_idx ON etl.source_fingerprints (day);

-- How many transaction ids a row version's xmin lies below ``xmax`` (a snapshot's xmax, as a number), from the 32 bits
-- a row keeps: exact for every id within 2^32 below it; an older one looks younger, never older (the check then hashes
-- its day). Plain arithmetic on a constant of the statement, not age() (which reads the backend's own counter and is
-- parallel restricted), so a scan that uses it may run in parallel. A plain SQL function, inlined.
CREATE FUNCTION etl.xmin_distance(row_xmin xid, xmax bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ((xmax - row_xmin::text::bigint) % 4294967296 + 4294967296) % 4294967296
$$;
