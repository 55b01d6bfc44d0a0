-- 0.6.0: claim affinity (docs/runner.md, "Affinity").  claim_runs may be told
-- the job its executor just ran and then takes that job's next run first at
-- equal priority; finding that run must not walk the whole queue, hence an
-- index of the pending runs by job in claim order.

CREATE INDEX run_job_claim_idx ON jobledger.run (job, priority DESC, run_after, created_at) WHERE status = 'pending';
COMMENT ON INDEX jobledger.run_job_claim_idx IS
    'Claiming with affinity: a job''s runnable pending runs by priority, then age (claim_runs'' prefer_job).';
