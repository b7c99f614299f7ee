-- Record one planned chunk of a run (split_from names the chunk it replaces after a timeout; owned_days, the days it
-- computes when they are not all of its range: schema 15).
INSERT INTO etl.chunks (run_id, chunk_id, chunk_start, chunk_end, status, estimated_rows, estimated_ms, split_from,
                        queued_at, owned_days)
VALUES (%(run_id)s, %(chunk_id)s, %(chunk_start)s, %(chunk_end)s, 'PENDING', %(estimated_rows)s, %(estimated_ms)s,
        %(split_from)s, now(), %(owned_days)s::date[]);
