-- The first statement of the staging transaction: one snapshot for the staged visits and the fingerprints of
-- the days they came from, so an edit committed while a run is in flight is in neither (the next run sees it).
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ;
