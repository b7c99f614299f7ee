-- For each day of a window, the latest succeeded chunk of an earlier run that covered it (read-only).
SELECT d::date AS day, c.run_id, c.finished_at
FROM generate_series(%(window_start)s::date, %(window_end)s::date, interval '1 day') AS d
LEFT JOIN LATERAL (
    SELECT ch.run_id, ch.finished_at
    FROM etl.chunks ch
    WHERE ch.status = 'SUCCEEDED' AND d::date BETWEEN ch.chunk_start AND ch.chunk_end
      AND (ch.owned_days IS NULL OR d::date = ANY(ch.owned_days))
    ORDER BY ch.finished_at DESC
    LIMIT 1
) c ON true
ORDER BY d;
