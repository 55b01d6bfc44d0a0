-- The SQL of jobledger.lake, one named block each (jobledger.core.named_sql).

-- name: format_types
-- format_type of each (oid, typmod) of a result's columns, in order.
SELECT pg_catalog.format_type(t.oid, t.mod) AS type
  FROM ROWS FROM (pg_catalog.unnest(%(oids)s::pg_catalog.oid[]), pg_catalog.unnest(%(mods)s::pg_catalog.int4[]))
       WITH ORDINALITY AS t(oid, mod, n)
 ORDER BY t.n

-- name: output_functions
-- The output function of each text-form column's type (the element's for
-- arrays), schema-qualified and quoted, in order.
SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname) AS output
  FROM ROWS FROM (pg_catalog.unnest(%(oids)s::pg_catalog.oid[]), pg_catalog.unnest(%(arrays)s::pg_catalog.bool[]))
       WITH ORDINALITY AS t(oid, is_array, n)
  JOIN pg_catalog.pg_type AS ty ON ty.oid = t.oid
  JOIN pg_catalog.pg_type AS used ON used.oid = CASE WHEN t.is_array THEN ty.typelem ELSE ty.oid END
  JOIN pg_catalog.pg_proc AS p ON p.oid = used.typoutput
  JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
 ORDER BY t.n
