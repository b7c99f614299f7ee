-- The latest runs, newest first, with their chunk tallies; only those in one state and begun since a time,
-- when given (NULL: any).
SELECT r.*,
       (SELECT count(*) FROM etl.chunks c
         WHERE c.run_id = r.run_id AND c.status <> 'SUPERSEDED') AS chunks,
       (SELECT count(*) FROM etl.chunks c WHERE c.run_id = r.run_id AND c.status = 'SUCCEEDED') AS chunks_succeeded,
       (SELECT count(*) FROM etl.chunks c WHERE c.run_id = r.run_id AND c.status = 'FAILED') AS chunks_failed
FROM etl.runs r
WHERE (%(status)s::text IS NULL OR r.status = %(status)s::text)
  AND (%(since)s::timestamptz IS NULL OR r.created_at >= %(since)s::timestamptz)
ORDER BY r.run_id DESC
LIMIT %(limit)s;
