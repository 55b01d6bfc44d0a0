-- 0.5.0: schedules.  A schedule submits a job on every tick of a cron
-- expression; pg_cron fires the ticks (its cron.job row runs
-- jobledger_internal.tick as the schedule's owner), this table is the
-- schedule's definition.  Both are dumped by pg_dump: this table as an
-- extension configuration table, cron.job as pg_cron's
-- (docs/schedules.md, "Backups and restores").

CREATE TABLE jobledger.schedule (
    owner name NOT NULL,
    name text NOT NULL
        CONSTRAINT schedule_name_check CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]*$' AND pg_catalog.length(name) <= 128),
    job text NOT NULL,
    cron text NOT NULL,
    params jsonb NOT NULL DEFAULT '{}' CHECK (pg_catalog.jsonb_typeof(params) = 'object'),
    priority integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (owner, name)
);
COMMENT ON TABLE jobledger.schedule IS
    'Schedules: a job submitted by its owner on every tick of a cron expression (pg_cron fires the ticks). Written by jobledger.schedule and jobledger.unschedule only.';
COMMENT ON COLUMN jobledger.schedule.owner IS
    'The role that made the schedule: pg_cron runs its ticks as this role, and each tick submits as it.';
COMMENT ON COLUMN jobledger.schedule.cron IS
    'When it ticks, in pg_cron''s syntax (checked by pg_cron), in pg_cron''s time zone.';
COMMENT ON COLUMN jobledger.schedule.params IS
    'The parameters each tick submits; string values of the form {{tick_date - 1}} are computed from the tick (docs/schedules.md).';
COMMENT ON COLUMN jobledger.schedule.priority IS 'The priority of the runs it submits.';
SELECT pg_catalog.pg_extension_config_dump('jobledger.schedule', '');

-- A role sees the schedules it (or a role it is a member of) owns.
ALTER TABLE jobledger.schedule ENABLE ROW LEVEL SECURITY;
CREATE POLICY schedule_visible ON jobledger.schedule FOR SELECT USING (
    pg_catalog.pg_has_role('pg_read_all_data', 'MEMBER')
    OR pg_catalog.pg_has_role(pg_catalog.to_regrole(pg_catalog.quote_ident(schedule.owner)), 'MEMBER')
);
GRANT SELECT ON jobledger.schedule TO PUBLIC;
