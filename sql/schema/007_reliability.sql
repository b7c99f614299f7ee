-- Version 7: reliability.
-- * A run can be STOPPED (a signal stopped its local driver): like FAILED, it can be redriven.
-- * A run names the execution that drives it now (`driver`): only that execution may reconcile or abort it,
--   so two redrives can never both finish one run.
-- * A visit that violates the contract's NOT NULL columns is rejected as INVALID_RECORD, not dropped; the run
--   counts them (`invalid_rows`).
-- * Failures are recorded by SQLSTATE (`error_code`), with whether the database cancelled the work at its time
--   limit (`timed_out`), so chunk splitting and sizing never depend on the server's message language.
-- * etl.round2_exact(x) rounds a double precision from its exact binary value (a cast to numeric keeps
--   only 15 significant digits: 25.674999999999998 would round to 25.68).
ALTER TABLE etl.runs DROP CONSTRAINT runs_status_check;
ALTER TABLE etl.runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED', 'STOPPED', 'ABANDONED'));
ALTER TABLE etl.runs ADD COLUMN driver text;
ALTER TABLE etl.runs ADD COLUMN invalid_rows bigint;
UPDATE etl.runs SET driver = execution_name;

ALTER TABLE conflict.rejected_visits DROP CONSTRAINT rejected_visits_reason_check;
ALTER TABLE conflict.rejected_visits ADD CONSTRAINT rejected_visits_reason_check
    CHECK (reason IN ('INVALID_RECORD', 'NON_POSITIVE_DURATION', 'DURATION_OVER_24H', 'START_OUTSIDE_VISIT_DATE'));
-- An INVALID_RECORD visit may lack a visit_date only if it is in no window; it never is, so this stays NOT NULL.

ALTER TABLE etl.chunks ADD COLUMN error_code text;
ALTER TABLE etl.chunks ADD COLUMN timed_out boolean NOT NULL DEFAULT false;
ALTER TABLE etl.chunk_attempts ADD COLUMN error_code text;
ALTER TABLE etl.chunk_attempts ADD COLUMN timed_out boolean NOT NULL DEFAULT false;
UPDATE etl.chunks SET timed_out = true WHERE last_error ILIKE '%statement timeout%';
UPDATE etl.chunk_attempts SET timed_out = true WHERE error ILIKE '%statement timeout%';

CREATE FUNCTION etl.round_exact_slow(x double precision, places integer) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    -- x = mantissa * 2^exponent exactly (IEEE 754 binary64); for a negative exponent k = -exponent that is
    -- mantissa * 5^k / 10^k, an exact decimal with k places, written out as text and read back as numeric.
    WITH bits AS (
        SELECT ('x' || encode(float8send(x), 'hex'))::bit(64)::bigint AS b
    ), parts AS (
        SELECT b < 0 AS negative,
               ((b >> 52) & 2047)::integer AS biased,
               (b & 4503599627370495)::numeric AS fraction
        FROM bits
    ), exact AS (
        SELECT negative,
               CASE WHEN biased = 0 THEN fraction ELSE fraction + 4503599627370496 END AS mantissa,
               CASE WHEN biased = 0 THEN -1074 ELSE biased - 1075 END AS exponent
        FROM parts
    ), integral AS (
        SELECT negative, exponent,
               trunc(mantissa * power(CASE WHEN exponent >= 0 THEN 2 ELSE 5 END::numeric, abs(exponent)))::text AS d
        FROM exact
    ), digits AS (
        -- at least one digit before the decimal point (lpad would cut a longer string)
        SELECT negative, exponent,
               CASE WHEN length(d) > -exponent THEN d ELSE repeat('0', 1 - exponent - length(d)) || d END AS d
        FROM integral
    )
    SELECT round(CASE WHEN negative THEN -1 ELSE 1 END *
                 CASE WHEN exponent >= 0 THEN d::numeric
                      ELSE (left(d, length(d) + exponent) || '.' || right(d, -exponent))::numeric END,
                 places)
    FROM digits
$$;

-- The fast path: x::numeric (15 significant digits) is within a relative 5e-16 of x, so unless x * 100 lies near
-- a tie (a fraction of one half, tested in double precision with a wide margin), both round the same way; only
-- near a tie is the exact value written out (a few in a million).
-- Not STRICT, so the planner can inline it into the calling statement.
CREATE FUNCTION etl.round2_exact(x double precision) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
               WHEN x IS NULL OR x = 'NaN' OR x IN ('infinity', '-infinity') THEN NULL
               WHEN abs(x * 100 - floor(x * 100) - 0.5) > 1e-6 THEN round(x::numeric, 2)
               ELSE etl.round_exact_slow(x, 2)
           END
$$;
