-- 0.6.0: claim affinity (docs/runner.md, "Affinity").  claim_runs may be told
-- the job its executor just ran and then takes that job's next run first at
-- equal priority; finding that run must not walk the queue past other jobs'
-- runs, hence an index of the pending runs by priority, then job, then claim
-- order.  (Priority first, like run_claim_idx: with the job first, the
-- planner, costing the job column's poor physical order, preferred
-- run_claim_idx with a filter on the job, which walks past every run of the
-- other jobs ahead.)

CREATE INDEX run_job_claim_idx ON jobledger.run (priority DESC, job, run_after, created_at) WHERE status = 'pending';
COMMENT ON INDEX jobledger.run_job_claim_idx IS
    'Claiming with affinity: the runnable pending runs of one job at one priority, oldest first (claim_runs'' prefer_job).';
