-- Before Task 01 loads a run: its empty staging partition, without indexes (schema 004).
SELECT etl.create_staged_partition(%(run_id)s);
