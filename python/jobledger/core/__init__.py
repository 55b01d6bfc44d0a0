"""What the server side and the client side share: pure Python (no psycopg,
no pyarrow), imported by jobledger.server inside PL/Python and by the runner,
the CLI and jobledger.lake.

* ``errors``: errors with a stable category and a SQLSTATE;
* ``destinations``: what a job's destination string means;
* ``schema_diff``: a query's columns against its destination table's;
* ``arrow_types``: the PostgreSQL to Arrow type mapping;
* ``dataset_manifest``: the versions of a Parquet directory dataset;
* ``search_path``: the search_path job queries run with.
"""
