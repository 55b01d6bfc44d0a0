-- 0.6.0: concurrency control and pause, per job (docs/runner.md, "Concurrency
-- and pause").  Both are properties of the job, not of a version: changing
-- them defines nothing new, and they apply to every pending run of the job
-- whatever version it was submitted with.  claim_runs reads them
-- (60_runner.sql); set_max_running, pause_job and resume_job write them
-- (55_job_concurrency.sql).

ALTER TABLE jobledger.job
    ADD COLUMN max_running integer CONSTRAINT job_max_running_check CHECK (max_running >= 1),
    ADD COLUMN paused_at timestamptz,
    ADD COLUMN paused_by name;
COMMENT ON COLUMN jobledger.job.max_running IS
    'At most this many runs of the job are running at once, across every runner (claim_runs enforces it); NULL: no limit. Set with jobledger.set_max_running.';
COMMENT ON COLUMN jobledger.job.paused_at IS
    'When the job was paused (jobledger.pause_job): its pending runs are not claimed until resume_job; NULL: not paused.';
COMMENT ON COLUMN jobledger.job.paused_by IS 'The role that paused the job; NULL when not paused.';
