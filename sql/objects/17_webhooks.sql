-- Webhooks (docs/notifications.md): a job's URL, the prefix allowlist, the
-- outbox trigger, and the runner's two calls on the outbox.

-- Whether the calling role is a superuser: the webhook prefix allowlist and
-- the lake grants (73_lake_grants.sql) are theirs.
CREATE OR REPLACE FUNCTION jobledger_internal.require_superuser(what text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    IF NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles AS r
                      WHERE r.rolname = jobledger_internal.calling_role()), false) THEN
        RAISE EXCEPTION '% is for superusers only', what
            USING ERRCODE = 'insufficient_privilege', DETAIL = 'category: permission_denied',
                  HINT = 'Runners POST webhooks and write lake tables from their own machines, with their own credentials: the extension''s owner decides where to.';
    END IF;
END
$$;
COMMENT ON FUNCTION jobledger_internal.require_superuser(text) IS
    'Internal: raises permission_denied unless the calling role is a superuser.';
REVOKE ALL ON FUNCTION jobledger_internal.require_superuser(text) FROM PUBLIC;

-- A URL a webhook may POST to: http(s), no credentials, no blanks, not too long.
CREATE OR REPLACE FUNCTION jobledger_internal.check_webhook_url(url text, what text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    authority text := (pg_catalog.regexp_match(url, '^https?://([^/?#]*)'))[1];
    problem text;
    hint text;
BEGIN
    problem := CASE
        WHEN url IS NULL OR url = '' THEN 'is empty'
        WHEN pg_catalog.length(url) > 2048 THEN 'is longer than 2048 characters'
        WHEN authority IS NULL THEN 'must start with http:// or https://'
        WHEN url ~ '[[:space:][:cntrl:]]' THEN 'contains blanks or control characters'
        WHEN pg_catalog.strpos(authority, '@') > 0 THEN 'must not carry credentials (user:password@)'
        WHEN authority = '' OR authority ~ '^:' THEN 'has no host'
    END;
    IF problem IS NULL THEN
        RETURN;
    END IF;
    hint := CASE
        WHEN problem LIKE 'contains%' THEN 'Percent-encode them.'
        WHEN problem LIKE '%credentials%' THEN
            'jobledger.job_webhook is readable by everyone who sees the job; authenticate with a secret path instead, under an allowed prefix.'
        ELSE 'For example https://hooks.example.com/jobledger/nightly (at most 2048 characters).'
    END;
    RAISE EXCEPTION '% %', what, problem
        USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument', HINT = hint;
END
$$;
COMMENT ON FUNCTION jobledger_internal.check_webhook_url(text, text) IS
    'Internal: raises invalid_argument unless url is an http(s) URL of at most 2048 characters with a host, no credentials and no blanks.';
REVOKE ALL ON FUNCTION jobledger_internal.check_webhook_url(text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.allow_webhook_prefix(prefix text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    PERFORM jobledger_internal.require_superuser('allow_webhook_prefix');
    PERFORM jobledger_internal.check_webhook_url(allow_webhook_prefix.prefix, 'a webhook prefix');
    -- The prefix ends the host (and port) with a "/": http://example.com
    -- alone would also allow http://example.com.attacker.net/.
    IF allow_webhook_prefix.prefix !~ '^https?://[^/?#]+/' THEN
        RAISE EXCEPTION 'a webhook prefix must include the whole host and a "/" after it, e.g. https://hooks.example.com/'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    INSERT INTO jobledger.webhook_prefix (prefix, allowed_by)
    VALUES (allow_webhook_prefix.prefix, jobledger_internal.calling_role())
    ON CONFLICT DO NOTHING;
END
$$;
COMMENT ON FUNCTION jobledger.allow_webhook_prefix(text) IS
    'Allows job webhooks whose URL starts with prefix (scheme, whole host, "/" and any path). Superusers only.';
GRANT EXECUTE ON FUNCTION jobledger.allow_webhook_prefix(text) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.disallow_webhook_prefix(prefix text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    removed integer;
BEGIN
    PERFORM jobledger_internal.require_superuser('disallow_webhook_prefix');
    DELETE FROM jobledger.webhook_prefix AS p WHERE p.prefix = disallow_webhook_prefix.prefix;
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed > 0;
END
$$;
COMMENT ON FUNCTION jobledger.disallow_webhook_prefix(text) IS
    'Takes back allow_webhook_prefix (webhooks already set keep their URL; set_job_webhook refuses new ones); returns whether it was allowed. Superusers only.';
GRANT EXECUTE ON FUNCTION jobledger.disallow_webhook_prefix(text) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.set_job_webhook(job text, url text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    PERFORM jobledger_internal.owned_job(set_job_webhook.job);
    IF set_job_webhook.url IS NULL THEN
        DELETE FROM jobledger.job_webhook AS w WHERE w.job = set_job_webhook.job;
        RETURN;
    END IF;
    PERFORM jobledger_internal.check_webhook_url(set_job_webhook.url, 'a webhook URL');
    IF NOT EXISTS (SELECT 1 FROM jobledger.webhook_prefix AS p
                    WHERE pg_catalog.starts_with(set_job_webhook.url, p.prefix)) THEN
        RAISE EXCEPTION 'webhook URL % is under no allowed prefix', set_job_webhook.url
            USING ERRCODE = 'insufficient_privilege', DETAIL = 'category: permission_denied',
                  HINT = 'The allowed prefixes are in jobledger.webhook_prefix; a superuser adds one with jobledger.allow_webhook_prefix.';
    END IF;
    INSERT INTO jobledger.job_webhook AS w (job, url, set_by)
    VALUES (set_job_webhook.job, set_job_webhook.url, jobledger_internal.calling_role())
    ON CONFLICT ON CONSTRAINT job_webhook_pkey DO UPDATE SET url = EXCLUDED.url, set_by = EXCLUDED.set_by, set_at = pg_catalog.now();
END
$$;
COMMENT ON FUNCTION jobledger.set_job_webhook(text, text) IS
    'Sets the URL that receives each terminal state of the job''s runs as JSON (NULL: none); it must be under an allowed prefix. Only the job''s owner (or a member of it) may.';
GRANT EXECUTE ON FUNCTION jobledger.set_job_webhook(text, text) TO PUBLIC;

-- The outbox trigger: in the transaction that ends the run.
CREATE OR REPLACE FUNCTION jobledger_internal.webhook_enqueue()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    INSERT INTO jobledger.webhook_delivery (run, status, url, payload)
    SELECT NEW.id, NEW.status, w.url, pg_catalog.jsonb_build_object(
               'run', NEW.id, 'job', NEW.job, 'status', NEW.status, 'attempt', NEW.attempt,
               'finished_at', NEW.finished_at, 'rows_written', NEW.rows_written,
               'error_category', NEW.error_category)
      FROM jobledger.job_webhook AS w
     WHERE w.job = NEW.job;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION jobledger_internal.webhook_enqueue() IS
    'Trigger: queues a webhook delivery when a run whose job has a webhook reaches a terminal state.';
REVOKE ALL ON FUNCTION jobledger_internal.webhook_enqueue() FROM PUBLIC;

CREATE OR REPLACE TRIGGER webhook_enqueue
    AFTER UPDATE OF status ON jobledger.run
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       AND NEW.status IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION jobledger_internal.webhook_enqueue();
COMMENT ON TRIGGER webhook_enqueue ON jobledger.run IS
    'Queues a jobledger.webhook_delivery for each terminal state of a run whose job has a webhook.';

-- The runner's calls: claim a due delivery (its row stays locked until the
-- caller's transaction ends: the runner POSTs inside it), record the attempt.
CREATE OR REPLACE FUNCTION jobledger_internal.claim_webhook_deliveries(max_deliveries integer DEFAULT 1)
RETURNS TABLE (id uuid, url text, payload jsonb, attempts integer)
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT d.id, d.url, d.payload, d.attempts
      FROM jobledger.webhook_delivery AS d
     WHERE d.delivered_at IS NULL AND d.abandoned_at IS NULL AND d.next_attempt_at <= pg_catalog.now()
     ORDER BY d.next_attempt_at
     LIMIT greatest(coalesce(max_deliveries, 1), 1)
       FOR UPDATE SKIP LOCKED
$$;
COMMENT ON FUNCTION jobledger_internal.claim_webhook_deliveries(integer) IS
    'Runner: due webhook deliveries, locked until the calling transaction ends (SKIP LOCKED: one runner each).';
REVOKE ALL ON FUNCTION jobledger_internal.claim_webhook_deliveries(integer) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger_internal.record_webhook_attempt(
    delivery uuid, http_status integer, error text, max_attempts integer DEFAULT 10)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    tried integer;
    outcome text;
BEGIN
    SELECT d.attempts + 1 INTO tried FROM jobledger.webhook_delivery AS d
     WHERE d.id = delivery AND d.delivered_at IS NULL AND d.abandoned_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;  -- settled already, or gone with its run
    END IF;
    outcome := CASE WHEN http_status BETWEEN 200 AND 299 AND error IS NULL THEN 'delivered'
                    WHEN tried >= greatest(coalesce(max_attempts, 10), 1) THEN 'abandoned'
                    ELSE 'retry' END;
    UPDATE jobledger.webhook_delivery AS d
       SET attempts = tried,
           last_attempt_at = pg_catalog.now(),
           last_http_status = http_status,
           last_error = CASE WHEN outcome = 'delivered' THEN NULL ELSE pg_catalog.left(error, 1000) END,
           delivered_at = CASE WHEN outcome = 'delivered' THEN pg_catalog.now() END,
           abandoned_at = CASE WHEN outcome = 'abandoned' THEN pg_catalog.now() END,
           -- 1 s, 2 s, 4 s ... up to an hour after each failed attempt.
           next_attempt_at = pg_catalog.now()
               + least(pg_catalog.power(2, least(tried - 1, 20)) * interval '1 second', interval '1 hour')
     WHERE d.id = delivery;
    RETURN outcome;
END
$$;
COMMENT ON FUNCTION jobledger_internal.record_webhook_attempt(uuid, integer, text, integer) IS
    'Runner: records one POST of a delivery: delivered (2xx), else retried after 1 s * 2^(attempts-1) (at most 1 h), abandoned after max_attempts; returns which (NULL: already settled).';
REVOKE ALL ON FUNCTION jobledger_internal.record_webhook_attempt(uuid, integer, text, integer) FROM PUBLIC;
