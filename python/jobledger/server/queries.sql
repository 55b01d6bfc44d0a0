-- The SQL jobledger.server sends through plpy, one named block each (read
-- once per session by jobledger.core.named_sql).  Values are always bound
-- ($1, $2, ...).  Three blocks are templates, filled only by
-- named_sql.fill (see each): nothing else is spliced into SQL text here.

-- name: extension_version
-- The installed extension's version (jobledger.server.version).
SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'jobledger'

-- name: calling_role
SELECT jobledger_internal.calling_role() AS role

-- name: timeout_out_of_range
-- statement_timeout's range; record_job_version checks it too.
SELECT $1::interval < interval '1 millisecond' OR $1::interval > interval '2147483647 milliseconds' AS out

-- name: job_owner
-- The job's owner when the caller is a member of it (a new version of an
-- existing job), else the caller: whose rights define_job's analysis uses.
-- record_job_version decides again, under a lock.
SELECT coalesce((SELECT j.owner FROM jobledger.job AS j
                  WHERE j.name = $1
                    AND pg_catalog.pg_has_role(jobledger_internal.calling_role(),
                                               pg_catalog.to_regrole(pg_catalog.quote_ident(j.owner)), 'MEMBER')),
                jobledger_internal.calling_role()) AS owner

-- name: record_job_version
SELECT jobledger_internal.record_job_version($1, $2, $3, $4, $5::jsonb, $6::interval, $7, $8, $9::jsonb) AS v

-- name: may_write_files
-- Whether the owner ($1) is a member of the role ($2) that may write
-- Parquet datasets (lake_preflight).
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1) AND pg_catalog.pg_has_role($1, $2, 'MEMBER') AS ok

-- name: may_write_lake
-- Whether jobs owned by $1 may write the lake location $2 (lake_preflight;
-- sql/objects/73_lake_grants.sql).
SELECT jobledger_internal.lake_write_allowed($1, $2) AS ok

-- name: destination
-- One row describing a destination table, for preflight.destination_of_row.
-- The name ($1) is read as SQL reads it (parse_ident: quotes, case folding);
-- an unqualified one is in public.  dest_parts is NULL when the name has not
-- one or two parts, dest_qualified when there is no such table.  $2 is the
-- owner, $3 the privileges the mode needs.
SELECT CASE WHEN dn.p IS NOT NULL THEN pg_catalog.format('%I.%I', dn.p[1], dn.p[2]) END AS dest_parts,
       CASE WHEN dc.oid IS NOT NULL THEN pg_catalog.format('%I.%I', dns.nspname, dc.relname) END AS dest_qualified,
       pg_catalog.has_schema_privilege($2, dns.oid, 'USAGE') AS dest_usage,
       -- Each privilege: given a list, has_table_privilege() wants any one of them.
       NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(pg_catalog.string_to_array($3, ',')) AS need
                    WHERE NOT pg_catalog.has_table_privilege($2, dc.oid, need)) AS dest_allowed,
       EXISTS (SELECT 1 FROM pg_catalog.pg_index di WHERE di.indrelid = dc.oid AND di.indisprimary) AS dest_has_pk,
       cols.names AS dest_names, cols.types AS dest_types, cols.not_null AS dest_not_null,
       cols.has_default AS dest_has_default, cols.generated AS dest_generated
  FROM (SELECT CASE pg_catalog.array_length(p, 1) WHEN 1 THEN ARRAY['public', p[1]] WHEN 2 THEN p END AS p
          FROM pg_catalog.parse_ident($1) AS p) AS dn
  LEFT JOIN (pg_catalog.pg_namespace dns
             JOIN pg_catalog.pg_class dc ON dns.oid = dc.relnamespace AND dc.relkind IN ('r', 'p'))
    ON dns.nspname = dn.p[1] AND dc.relname = dn.p[2]
  LEFT JOIN LATERAL (
       SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum) AS names,
              pg_catalog.array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) AS types,
              pg_catalog.array_agg(a.attnotnull ORDER BY a.attnum) AS not_null,
              pg_catalog.array_agg(a.atthasdef OR a.attidentity <> '' ORDER BY a.attnum) AS has_default,
              pg_catalog.array_agg(a.attidentity = 'a' OR a.attgenerated <> '' ORDER BY a.attnum) AS generated
         FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = dc.oid AND a.attnum > 0 AND NOT a.attisdropped) AS cols ON true

-- name: as_owner
-- The owner's role ($1) for the rest of the subtransaction, when the caller
-- is not the owner but a member of it (define_job of an existing job).
SELECT CASE WHEN $1 OPERATOR(pg_catalog.<>) CURRENT_USER
            THEN pg_catalog.set_config('role', $1, true) END AS role

-- name: set_local_search_path
-- SET LOCAL search_path = $1 (the template search path, core.search_path).
SELECT pg_catalog.set_config('search_path', $1, true)

-- name: standard_conforming_strings
SET LOCAL standard_conforming_strings = on

-- name: pinned_search_path
SET LOCAL search_path = pg_catalog, jobledger, pg_temp

-- name: preflight_view
-- A template (named_sql.fill): view is a quoted identifier of preflight's
-- own (jobledger_preflight_<n>), query the job's template text, which
-- single_statement.prepare_one checks is one CREATE VIEW and nothing else.
-- It holds template text: only prepare_one may send it.
CREATE TEMPORARY VIEW pg_temp.{view} AS {query}

-- name: explain_view
-- A template (named_sql.fill): view as in preflight_view.  Plans the
-- view as the current role, runs nothing.
EXPLAIN (COSTS OFF) SELECT * FROM pg_temp.{view}

-- name: view_columns
SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_catalog.pg_attribute a
 WHERE a.attrelid = $1::pg_catalog.regclass AND a.attnum > 0
 ORDER BY a.attnum

-- name: dependencies
-- Everything the view's rewrite rule ($1) depends on, by name (names, not
-- OIDs, survive pg_dump and restore): relations with the column used (NULL
-- for a whole-row reference) and functions by signature.  Catalogs are no
-- one's dependencies (see preflight._denied_when_planned).
WITH deps AS (
    SELECT DISTINCT d.refclassid, d.refobjid, d.refobjsubid
      FROM pg_catalog.pg_depend d
      JOIN pg_catalog.pg_rewrite rw ON rw.oid = d.objid AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
     WHERE rw.ev_class = $1::pg_catalog.regclass
       AND d.refobjid <> $1::pg_catalog.regclass
)
SELECT coalesce(pg_catalog.jsonb_agg(dep ORDER BY dep::text), '[]')::text AS dependencies
  FROM (SELECT pg_catalog.jsonb_build_object('schema', n.nspname, 'relation', c.relname, 'column', a.attname) AS dep
          FROM deps
          JOIN pg_catalog.pg_class c ON deps.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                    AND c.oid = deps.refobjid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = deps.refobjsubid
                                             AND deps.refobjsubid > 0
        UNION
        -- regprocedure's text reads back with to_regprocedure under the
        -- search_path submit_job pins (this one): qualified when not on it.
        SELECT pg_catalog.jsonb_build_object('function', p.oid::pg_catalog.regprocedure::pg_catalog.text)
          FROM deps
          JOIN pg_catalog.pg_proc p ON deps.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                                   AND p.oid = deps.refobjid) AS all_deps

-- name: denied_dependencies
-- What of those the owner ($1) may not use: the one rule, shared with submit_job.
SELECT what FROM jobledger_internal.denied_dependencies($1, $2::jsonb)

-- name: submit_context
-- Everything submit_job needs to know, in one query: the job's current
-- version, whether the calling role may submit it (the job's owner, a member
-- of that role, or a member of a role the job was granted to; a dropped role
-- counts as no one), and the destination's kind and, for a table, whether it
-- changed (the d.* columns, for preflight.current_destination).  One row
-- always; the job's columns are NULL when there is no such job.  $1 is the
-- job, $2 the privileges each mode needs ({"append": "INSERT", ...}).
--
-- Whether the destination table changed, cheaply: a table's column
-- definitions live in its pg_attribute rows, and any change to one writes
-- that row anew with a newer xmin: the sum of their xmins moves with every
-- change (ALTER TYPE, SET NOT NULL, defaults, identity, renames, added and
-- dropped columns).  A primary key lives in pg_index, so it is asked for;
-- privileges are evaluated every time.  Destinations outside the database
-- (result, parquet:...) give no d row: to_regclass would raise on them.
WITH me AS (SELECT jobledger_internal.calling_role() AS role)
SELECT me.role, j.name AS job, j.owner, v.version, v.query, v.params::text AS params, v.destination, v.mode,
       v.max_attempts, c.placeholders::text AS placeholders, c.query_end, c.shapes::text AS shapes,
       c.problem AS check_problem,
       (SELECT pg_catalog.string_agg(dd.what, E'\n') FROM jobledger_internal.denied_dependencies(j.owner, c.dependencies) AS dd)
           AS denied,
       me.role = j.owner
       OR coalesce(pg_catalog.pg_has_role(me.role, pg_catalog.to_regrole(pg_catalog.quote_ident(j.owner)),
                                          'MEMBER'), false)
       OR EXISTS (SELECT 1 FROM jobledger.job_grant g
                   WHERE g.job = j.name
                     AND pg_catalog.pg_has_role(me.role, pg_catalog.to_regrole(pg_catalog.quote_ident(g.grantee)),
                                                'MEMBER')) AS may_submit,
       k.destination_kind,
       d.*
  FROM me
  LEFT JOIN jobledger.job j ON j.name = $1
  LEFT JOIN jobledger.job_version v ON v.job = j.name AND v.version = j.current_version
  LEFT JOIN jobledger.job_version_check c ON c.job = v.job AND c.version = v.version
  LEFT JOIN LATERAL (SELECT jobledger_internal.destination_kind(v.destination) AS destination_kind) AS k ON true
  LEFT JOIN LATERAL (
SELECT dc.oid AS dest_oid,
       (SELECT pg_catalog.sum(a.xmin::text::bigint) FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = dc.oid AND a.attnum > 0)::text AS dest_columns_version,
       EXISTS (SELECT 1 FROM pg_catalog.pg_index di WHERE di.indrelid = dc.oid AND di.indisprimary) AS dest_has_pk,
       pg_catalog.has_schema_privilege(j.owner, dc.relnamespace, 'USAGE') AS dest_usage,
       NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(pg_catalog.string_to_array(($2::jsonb ->> v.mode), ',')) AS need
                    WHERE NOT pg_catalog.has_table_privilege(j.owner, dc.oid, need)) AS dest_allowed
  FROM pg_catalog.pg_class dc
 WHERE dc.oid = CASE WHEN k.destination_kind = 'table' THEN pg_catalog.to_regclass(v.destination) END
   AND dc.relkind IN ('r', 'p')
  ) AS d ON true

-- name: insert_run
-- The pending run, and a wake-up for runners in the same statement (no
-- payload: any role may LISTEN, and which jobs exist is not everyone's to know).
-- ON CONFLICT: a concurrent submit with the same idempotency key won.
WITH run AS (
    INSERT INTO jobledger.run (job, job_version, parameters, rendered_sql, priority, run_after,
                               max_attempts, idempotency_key, submitted_by)
    VALUES ($1, $2, $3::jsonb, $4, $5, coalesce($6::timestamptz, pg_catalog.now()), $7, $8, $9)
    ON CONFLICT (job, submitted_by, idempotency_key) DO NOTHING
    RETURNING id
)
SELECT run.id::text AS id, pg_catalog.pg_notify($10, '') FROM run

-- name: run_with_key
-- The run this role already submitted with this key, and whether with the
-- same parameters.
SELECT r.id::text AS id, r.parameters = $4::jsonb AS same
  FROM jobledger.run AS r
 WHERE r.job = $1 AND r.submitted_by = $2 AND r.idempotency_key = $3

-- name: literal_probe
-- Not sent: render.literal_tree parses it with PostgreSQL's grammar, in
-- process, to read one literal alone.  A template (named_sql.fill):
-- literal is the literal as literals.literal wrote it.
SELECT {literal}

-- name: lake_dataset
-- The schema and latest version jobledger recorded for a delta: table or a
-- lance: dataset (lake_preflight); $2 is the format ('delta', 'lance').
SELECT d.arrow_schema::text AS arrow_schema, d.latest_version
  FROM jobledger.lake_dataset AS d
 WHERE d.uri = $1 AND d.format = $2
