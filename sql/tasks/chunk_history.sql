-- Measured chunk throughput of recent runs: succeeded chunks (rows per second), and attempts that ran out
-- of time (cancelled at their statement timeout: timed_out; or never finished within the worker's timeout) as
-- an upper bound.
SELECT 'succeeded' AS kind, c.visits AS rows, c.duration_ms::double precision AS elapsed_ms
FROM etl.chunks c
WHERE c.status = 'SUCCEEDED' AND c.visits >= %(min_rows)s AND c.duration_ms > 0
  AND c.finished_at > now() - make_interval(days => %(days)s)
UNION ALL
SELECT 'timed_out', c.estimated_rows,
       coalesce(extract(epoch FROM a.finished_at - a.started_at) * 1000, %(worker_timeout_ms)s)
FROM etl.chunk_attempts a
JOIN etl.chunks c USING (run_id, chunk_id)
WHERE a.started_at > now() - make_interval(days => %(days)s)
  AND c.estimated_rows >= %(min_rows)s
  AND ((a.outcome = 'FAILED' AND a.timed_out)
       OR (a.outcome IS NULL AND a.started_at < now() - make_interval(secs => %(worker_timeout_ms)s / 1000.0)));
