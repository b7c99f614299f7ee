-- Benchmark only: the minimal single statement's index (bench/user_view.py), built once after the load.
CREATE INDEX minimal_visits_band_idx ON minimal_visits (caregiver_id, start_ts);
