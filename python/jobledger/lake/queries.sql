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

-- name: text_forms
-- The query with its text-form columns replaced by their text output
-- (lake.arrow_batches): {query} is the query as it was rendered, on lines of
-- its own (it may end in a -- comment); {columns} the outer expressions over
-- q.c1 .. q.cN ({names}).  A plain outer SELECT keeps the rows and their order.
SELECT {columns} FROM (
{query}
) AS q ({names})

-- name: text_form_value
-- One text-form column {v}: its type's output function {f}.
{f}({v})::pg_catalog.text

-- name: text_form_array
-- One text-form array column {v}, element by element with {f}, NULLs and
-- order kept; a value of more than one dimension becomes a two-dimensional
-- array, which the list builder refuses by name.
CASE WHEN pg_catalog.array_ndims({v}) > 1 THEN ARRAY[ARRAY[NULL::pg_catalog.text]]
     WHEN {v} IS NOT NULL THEN ARRAY(SELECT {f}(u.e)::pg_catalog.text
                                       FROM pg_catalog.unnest({v}) WITH ORDINALITY AS u(e, n) ORDER BY u.n)
END
