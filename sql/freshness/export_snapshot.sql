-- Inside the staging transaction, after its snapshot is taken: that snapshot, for a second session to read the
-- fingerprints in it while this one loads the staging (freshness.fingerprints_beside, SET TRANSACTION SNAPSHOT).
SELECT pg_export_snapshot() AS snapshot_id;
