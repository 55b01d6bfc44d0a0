-- 0.6.0: who may write where in the lake (docs/security.md, "Lake
-- destinations").  A delta: (or lance:) job makes the runner write a
-- location of its owner's choosing with the runner's storage credentials:
-- the writer is the runner, not the database server, so PostgreSQL's own
-- pg_write_server_files says nothing about it.  Instead the extension's
-- owner grants roles location prefixes explicitly (allow_lake_prefix,
-- superusers only); define_job, submit_job and the runner, right before it
-- writes, ask jobledger_internal.lake_write_allowed.
--
-- grantee is a role's oid (regrole: pg_dump writes the name, a restore reads
-- it back), 0 for PUBLIC (written '-').  prefix is normalised as lake
-- destinations are (jobledger.core.destinations.lake_prefix): a local
-- directory without a trailing "/", or s3://bucket[/prefix].
CREATE TABLE jobledger.lake_grant (
    grantee regrole NOT NULL,
    prefix text NOT NULL CHECK (prefix ~ '^(/[^/]|s3://[^/])' AND prefix !~ '/$'
                                AND prefix !~ '[?[:space:][:cntrl:]]' AND pg_catalog.length(prefix) <= 4096),
    granted_by name NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (grantee, prefix)
);
COMMENT ON TABLE jobledger.lake_grant IS
    'Lake locations (delta:, lance:) a role''s jobs may write, by prefix of whole path components; read through jobledger.lake_grants. Written by jobledger.allow_lake_prefix and disallow_lake_prefix (superusers) only.';
COMMENT ON COLUMN jobledger.lake_grant.grantee IS 'The role granted (its members with its privileges too); 0 (shown as -) for PUBLIC.';
COMMENT ON COLUMN jobledger.lake_grant.prefix IS
    'A local directory or s3://bucket[/prefix], normalised like lake destinations; covers itself and every location below it.';
COMMENT ON COLUMN jobledger.lake_grant.granted_by IS 'The superuser who granted it.';
COMMENT ON COLUMN jobledger.lake_grant.granted_at IS 'When.';
SELECT pg_catalog.pg_extension_config_dump('jobledger.lake_grant', '');
-- Readable by everyone (a refusal names the function that grants): where
-- the runners write, and for whom, is not secret to the roles that may make
-- them do so.
ALTER TABLE jobledger.lake_grant ENABLE ROW LEVEL SECURITY;
CREATE POLICY lake_grant_visible ON jobledger.lake_grant FOR SELECT USING (true);
GRANT SELECT ON jobledger.lake_grant TO PUBLIC;
