-- 0.6.0: webhooks (docs/notifications.md).  A job may name an HTTP(S) URL
-- that receives each terminal state of its runs as JSON; the runner delivers
-- them from an outbox, jobledger.webhook_delivery, filled by a trigger in the
-- transaction that ends the run (so a committed end is never lost and a
-- rolled back one is never announced).  The runner POSTs from its machine,
-- so only URLs under a prefix the extension's owner allowed are accepted.

CREATE TABLE jobledger.job_webhook (
    job text PRIMARY KEY REFERENCES jobledger.job (name) ON DELETE CASCADE,
    url text NOT NULL CHECK (url ~ '^https?://' AND pg_catalog.length(url) <= 2048),
    set_by name NOT NULL,
    set_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE jobledger.job_webhook IS
    'The webhook of a job: the URL that receives each terminal state of its runs. Written by jobledger.set_job_webhook only.';
COMMENT ON COLUMN jobledger.job_webhook.url IS 'An http:// or https:// URL under an allowed prefix (jobledger.webhook_prefix).';
COMMENT ON COLUMN jobledger.job_webhook.set_by IS 'The role that set it.';
SELECT pg_catalog.pg_extension_config_dump('jobledger.job_webhook', '');

-- A webhook is seen by those who see its job.
ALTER TABLE jobledger.job_webhook ENABLE ROW LEVEL SECURITY;
CREATE POLICY job_webhook_visible ON jobledger.job_webhook FOR SELECT USING (
    EXISTS (SELECT 1 FROM jobledger.job AS j WHERE j.name = job_webhook.job)
);
GRANT SELECT ON jobledger.job_webhook TO PUBLIC;

-- The allowlist: the URL prefixes webhooks may use.  Readable by everyone
-- (set_job_webhook's refusal names it): where the runners may POST to is
-- not secret to the roles that may make them do so.
CREATE TABLE jobledger.webhook_prefix (
    prefix text PRIMARY KEY CHECK (prefix ~ '^https?://[^/?#@[:space:]]+/' AND pg_catalog.length(prefix) <= 2048),
    allowed_by name NOT NULL,
    allowed_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE jobledger.webhook_prefix IS
    'URL prefixes a job''s webhook may start with (the runner POSTs from its machine). Written by jobledger.allow_webhook_prefix and disallow_webhook_prefix (superusers) only.';
SELECT pg_catalog.pg_extension_config_dump('jobledger.webhook_prefix', '');
ALTER TABLE jobledger.webhook_prefix ENABLE ROW LEVEL SECURITY;
CREATE POLICY webhook_prefix_visible ON jobledger.webhook_prefix FOR SELECT USING (true);
GRANT SELECT ON jobledger.webhook_prefix TO PUBLIC;

-- The outbox: one row per terminal state of a run whose job has a webhook.
CREATE TABLE jobledger.webhook_delivery (
    id uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    run uuid NOT NULL REFERENCES jobledger.run (id) ON DELETE CASCADE,
    status jobledger.run_status NOT NULL,
    url text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_attempt_at timestamptz,
    delivered_at timestamptz,
    abandoned_at timestamptz,
    last_error text,
    last_http_status integer,
    CONSTRAINT webhook_delivery_settled_once CHECK (delivered_at IS NULL OR abandoned_at IS NULL)
);
CREATE INDEX webhook_delivery_due ON jobledger.webhook_delivery (next_attempt_at)
    WHERE delivered_at IS NULL AND abandoned_at IS NULL;
CREATE INDEX webhook_delivery_run ON jobledger.webhook_delivery (run);
COMMENT ON TABLE jobledger.webhook_delivery IS
    'Webhook outbox: each terminal state of a run whose job has a webhook, with its delivery attempts. Visible like its run; deleted with it.';
COMMENT ON COLUMN jobledger.webhook_delivery.payload IS
    'The JSON body POSTed: run, job, status, attempt, finished_at, rows_written, error_category.';
COMMENT ON COLUMN jobledger.webhook_delivery.attempts IS 'POSTs tried so far.';
COMMENT ON COLUMN jobledger.webhook_delivery.next_attempt_at IS 'Not tried before this time (backoff after a failed attempt).';
COMMENT ON COLUMN jobledger.webhook_delivery.delivered_at IS 'When a POST was answered with a 2xx status.';
COMMENT ON COLUMN jobledger.webhook_delivery.abandoned_at IS 'When the runner gave up (too many failed attempts).';
COMMENT ON COLUMN jobledger.webhook_delivery.last_error IS 'Why the last attempt failed.';
COMMENT ON COLUMN jobledger.webhook_delivery.last_http_status IS 'The HTTP status of the last answer (NULL: none, e.g. a timeout).';
SELECT pg_catalog.pg_extension_config_dump('jobledger.webhook_delivery', '');
ALTER TABLE jobledger.webhook_delivery ENABLE ROW LEVEL SECURITY;
CREATE POLICY webhook_delivery_visible ON jobledger.webhook_delivery FOR SELECT USING (
    EXISTS (SELECT 1 FROM jobledger.run AS r WHERE r.id = webhook_delivery.run)
);
GRANT SELECT ON jobledger.webhook_delivery TO PUBLIC;
