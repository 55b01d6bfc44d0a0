"""jobledger demo, part 4: the Delta table the region_revenue runs wrote, read
back with deltalake (delta-rs) as any Delta reader would, version by version.

Each run's snapshot_id in the ledger is the table version its commit made;
``DeltaTable(uri, version=N)`` is the table as that run left it (time
travel), and the commit carries the run in its app transaction.

    python demo/read_lake.py <table directory> <conninfo>
"""

from __future__ import annotations

import os
import sys

import deltalake
import psycopg
from psycopg import rows


def main(uri: str, conninfo: str) -> None:
    with psycopg.connect(conninfo, row_factory=rows.dict_row) as conn:
        runs = conn.execute(
            "SELECT id, parameters ->> 'day' AS day, status, rows_written, snapshot_id"
            "  FROM jobledger.runs WHERE job = 'region_revenue' ORDER BY snapshot_id::bigint").fetchall()
    table = deltalake.DeltaTable(uri)
    print(f"{uri}: Delta table version {table.version()}, {len(table.file_uris())} data files, "
          f"partitioned by {', '.join(table.metadata().partition_columns) or 'nothing'}")
    for run in runs:
        if run["status"] != "succeeded":
            print(f"run {run['id']} (day {run['day']}): {run['status']}")
            continue
        version = int(run["snapshot_id"])
        snapshot = deltalake.DeltaTable(uri, version=version).to_pyarrow_table().sort_by([("day", "ascending"),
                                                                                          ("region", "ascending")])
        print(f"\nrun {run['id']} (day {run['day']}): wrote {run['rows_written']} rows as version {version}; "
              f"the table at version {version} (DeltaTable(uri, version={version})):")
        for row in snapshot.to_pylist():
            print(f"  {row['day']}  {row['region']:<6} {row['orders']:>5} orders  {row['revenue']:>10}")
    latest = table.to_pyarrow_table()
    print(f"\nnow: {latest.num_rows} rows; the table's history (each commit names its run):")
    for entry in reversed(table.history()):
        print(f"  v{entry['version']} {entry['operation']} run={entry.get('jobledger.run', '-')}")


if __name__ == "__main__":
    main(*sys.argv[1:])
    # deltalake and pyarrow may still be stopping their thread pools when the
    # interpreter finalises, and the process then aborts after its work is
    # done ("terminate called without an active exception", delta-io/delta-rs
    # issue 2184; seen once in about 15 demo runs): end here, output flushed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
