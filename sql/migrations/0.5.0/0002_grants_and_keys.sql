-- Grants name a role by its own name (grant_job stored regrole's text, which
-- is quoted when the name needs quotes, and then matched no one).
UPDATE jobledger.job_grant AS g
   SET grantee = r.rolname
  FROM pg_catalog.pg_roles AS r
 WHERE g.grantee LIKE '"%"'
   AND r.oid = pg_catalog.to_regrole(g.grantee)
   AND NOT EXISTS (SELECT 1 FROM jobledger.job_grant AS o WHERE o.job = g.job AND o.grantee = r.rolname);

-- Idempotency keys belong to the role that submits: another role's key is
-- another key (it neither returns that role's run nor can squat it).
ALTER TABLE jobledger.run DROP CONSTRAINT run_idempotency_key;
ALTER TABLE jobledger.run ADD CONSTRAINT run_idempotency_key UNIQUE (job, submitted_by, idempotency_key);
COMMENT ON COLUMN jobledger.run.idempotency_key IS
    'Optional; unique per job and submitting role: the same role submitting the same key with the same parameters gets the existing run, with other parameters an idempotency_conflict.';
