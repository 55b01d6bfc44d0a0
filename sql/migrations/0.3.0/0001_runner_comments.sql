-- 0.3.0, the runner: what the runner now records in columns 0.1.0 reserved.
-- Comments only; the runner's functions live in sql/objects/60_*.sql.
COMMENT ON COLUMN jobledger.run.error IS
    'Error of the last failed attempt (kept while a retry is pending, cleared on success), or why the run was cancelled.';
COMMENT ON COLUMN jobledger.run.error_category IS
    'Stable category of the error: timeout, cancelled, transient_error, execution_error, destination_missing, runner_lost, or a jobledger error category.';
COMMENT ON COLUMN jobledger.run.cancel_requested IS
    'Set by cancel_run when it cancelled the run while it was running (its query was then cancelled on the server).';
COMMENT ON COLUMN jobledger.run.rows_written IS
    'Rows the successful attempt inserted into the destination (for merge: inserted or updated).';
COMMENT ON COLUMN jobledger.run_attempt.status IS
    'running, then succeeded, failed or cancelled. An attempt released by a runner shutting down is removed: it did not count.';
