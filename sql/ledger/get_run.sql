-- One run of the ledger.
SELECT * FROM etl.runs WHERE run_id = %(run_id)s;
