"""``jobledger result RUN --format csv|json|parquet [-o FILE]``: a run's stored result.

Registered on the ``jobledger`` command group by jobledger.cli.  Connects and
reports errors like every command (jobledger.cli.commands.common: ``--dsn``,
else ``DATABASE_URL``, else the PG* variables; one error line with its
category), takes the run's id or a unique prefix (``common.resolve_run``),
and reads the result with ``jobledger.client.result`` (row-level security
applies).

* ``json``: the exact rendering ``jobledger.result_json`` returns (numbers
  with every digit, ISO 8601 timestamps, uuids as text), keys in column
  order;
* ``csv``: a header line, then one line per row; NULL is an empty field,
  uuid and json columns their text, bytea ``\\x`` hex, arrays and timestamps
  as in the JSON rendering;
* ``parquet``: one Parquet file with the result's Arrow schema.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import IO, Any

import click

from jobledger.cli.commands import common

# pyarrow is imported when the command runs: `jobledger --help`
# stays quick.


@click.command("result")
@click.argument("run")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "parquet"]), default="json", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write here instead of standard output.")
@common.dsn_option
def result(run: str, fmt: str, output: str | None, dsn: str | None) -> None:
    """Print or save the stored result of RUN (its id or a unique prefix; a run
    of a job whose destination is result)."""
    from jobledger import client

    with common.connect(dsn) as conn:
        table = client.result(conn, common.resolve_run(conn, run))
    data = render(table, fmt)
    if output is None:
        if fmt == "parquet" and sys.stdout.isatty():
            raise click.UsageError("Parquet is binary: use -o FILE or redirect standard output.")
        stream: IO[bytes] = sys.stdout.buffer
        stream.write(data)
        stream.flush()
    else:
        with open(output, "wb") as out:
            out.write(data)


def render(table: Any, fmt: str) -> bytes:
    """The bytes of ``table`` in ``fmt``."""
    from jobledger.lake import arrow_schema, ipc_result

    if fmt == "json":
        return ipc_result.to_json(table).encode() + b"\n"
    if fmt == "parquet":
        import pyarrow
        import pyarrow.parquet

        sink = pyarrow.BufferOutputStream()
        pyarrow.parquet.write_table(arrow_schema.parquet_batch(table), sink)  # intervals as structs
        return sink.getvalue().to_pybytes()
    return _csv(table).encode()


def _csv(table: Any) -> str:
    """CSV from the exact JSON rendering of each value (ipc_result): strings
    unquoted, NULL empty, numbers with every digit, arrays and json as JSON text."""
    from jobledger.lake import ipc_result

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in ipc_result.rendered_rows(table):
        writer.writerow(_field(rendered) for rendered in row)
    return out.getvalue()


def _field(rendered: str) -> str:
    if rendered == "null":
        return ""
    if rendered.startswith('"'):
        return json.loads(rendered)
    return rendered
