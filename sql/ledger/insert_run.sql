-- Begin a run, driven by the execution that creates it; the partial unique index on RUNNING refuses a second
-- active run.
INSERT INTO etl.runs (execution_name, trigger, executor, driver, window_start, window_end, status,
                      chunk_days, max_chunk_rows, max_concurrency)
VALUES (%(execution_name)s, %(trigger)s, %(executor)s, %(execution_name)s, %(window_start)s, %(window_end)s,
        'RUNNING', %(chunk_days)s, %(max_chunk_rows)s, %(max_concurrency)s)
RETURNING *;
