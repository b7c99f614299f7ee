-- Remove the staged visits of one run (before restaging it, and once the run has ended): drop its partition.
SELECT etl.drop_staged_partition(%(run_id)s);
