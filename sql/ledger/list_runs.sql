-- The latest runs, newest first, with their chunk tallies.
SELECT r.*,
       (SELECT count(*) FROM etl.chunks c
         WHERE c.run_id = r.run_id AND c.status <> 'SUPERSEDED') AS chunks,
       (SELECT count(*) FROM etl.chunks c WHERE c.run_id = r.run_id AND c.status = 'SUCCEEDED') AS chunks_succeeded,
       (SELECT count(*) FROM etl.chunks c WHERE c.run_id = r.run_id AND c.status = 'FAILED') AS chunks_failed
FROM etl.runs r
ORDER BY r.run_id DESC
LIMIT %(limit)s;
