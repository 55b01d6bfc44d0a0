"""Preflight for destinations outside the database: ``result``, ``parquet:<directory>``, ``delta:`` and ``lance:``.

Runs in the server (PL/Python, inside define_job's and submit_job's SECURITY
DEFINER entry points), so it imports only pure Python (``arrow_types``,
``dataset_manifest``): pyarrow stays out of the server's dependencies.

* Both: every column the query produces must have an Arrow mapping
  (``unsupported_type``, naming every refused column: since every type
  has a text form, only arrays declared with more than one dimension) and a name of its own
  (Arrow and Parquet readers address columns by name).
* ``delta:``, ``lance:`` (any lake location): the job's owner must be a superuser or
  hold a grant of a prefix covering the location (``check_lake_writer``,
  core.lake_grants); the runner asks again right before it writes.
* ``parquet:``: the job's owner must be a member of ``pg_write_server_files``.
  Defining such a job makes the runner create and write files in a directory
  of the owner's choosing, with the runner's OS user; PostgreSQL's own
  notion of "may write files on the server" is the closest grant there is,
  and superusers have it.  (A custom setting listing allowed directories
  would not do: any role may SET a custom setting in its own session.)
* ``parquet:``: the dataset's current manifest is read *by the database
  server's OS user* (usually ``postgres``), and the query's Arrow schema is
  compared with the dataset's (``dataset_manifest.check_destination``), as
  skardi compares a query with a Lance dataset: ``schema_mismatch`` listing
  every difference, ``destination_missing`` when there is no dataset and the
  destination lacks ``create_if_missing=true``.  The runner writes the same
  path as *its* OS user at run time, so both must see the same directory:
  the same machine, or the same shared mount at the same path.  A server
  that cannot read the directory refuses the job with ``permission_denied``
  (saying which OS user could not read what); a server that does not see
  the directory at all sees no dataset (``destination_missing``, or with
  ``create_if_missing`` the runner creates it, and its first run decides the
  schema).  A directory the server sees that holds no dataset and is neither
  empty nor marked as jobledger's is refused (``destination_missing``,
  ``dataset_manifest.check_owned``): jobledger never writes beside, or
  removes, files it did not write.  The runner checks again before writing and at commit, so a
  preflight that could not see the truth never lets a wrong schema in.
* ``delta:`` and ``lance:``: the query's columns, in the format's forms
  (``arrow_types.delta_description`` / ``lance_description``), against the
  schema jobledger last committed to that uri in that format
  (``check_registered``: jobledger.lake_dataset, no storage access; the
  runner checks the real table before writing).
"""

from __future__ import annotations

import collections
import json
import os
from typing import Any

from jobledger.core import arrow_types, dataset_manifest, destinations, errors, lake_grants
from jobledger.server import plans, queries

WRITE_FILES_ROLE = "pg_write_server_files"


def check(plpy: Any, job: str, owner: str,
          destination: destinations.Result | destinations.Parquet | destinations.Delta | destinations.Lance,
          columns: list[tuple[str, str]]) -> list[arrow_types.MappedColumn]:
    """Everything to refuse before a run of ``job`` is recorded; the mapped columns."""
    mapped = arrow_types.map_columns(columns)
    repeated = [name for name, count in collections.Counter(c.name for c in mapped).items() if count > 1]
    if repeated:
        raise errors.JobledgerError(
            "schema_mismatch",
            f'job "{job}": column "{repeated[0]}" is produced more than once; '
            f"{destination.kind} destinations address columns by name",
            detail="\n".join(f'column "{name}" is produced more than once' for name in repeated),
            hint="Give every output column its own name (AS ...).",
        )
    if isinstance(destination, destinations.Parquet):
        check_writer(plpy, job, owner)
        check_dataset(job, destination, [(c.name, arrow_types.parquet_description(c.arrow)) for c in mapped])
    if isinstance(destination, destinations.Delta):
        check_lake_writer(plpy, job, owner, destination.uri)
        check_registered(plpy, job, destination,
                         [(c.name, arrow_types.delta_description(c.arrow)) for c in mapped])
    if isinstance(destination, destinations.Lance):
        check_lake_writer(plpy, job, owner, destination.uri)
        check_registered(plpy, job, destination,
                         [(c.name, arrow_types.lance_description(c.arrow)) for c in mapped])
    return mapped


_TABLE_NAMES = {destinations.Delta.kind: "delta table", destinations.Lance.kind: "lance dataset"}


def check_registered(plpy: Any, job: str, destination: destinations.Delta | destinations.Lance,
                     produced: list[tuple[str, str]]) -> None:
    """The query's columns in the format's forms against the table's schema
    as jobledger last committed it (jobledger.lake_dataset, the same format):
    no storage access at submit.  A table jobledger never wrote is checked by
    the runner before writing."""
    rows = plpy.execute(plans.plan(plpy, queries.get("lake_dataset"), ["text", "text"]),
                        [destination.uri, destination.kind])
    if not rows:
        return
    existing = [(name, arrow) for name, arrow in json.loads(rows[0]["arrow_schema"])]
    problems = arrow_types.schema_problems(produced, existing)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise errors.JobledgerError(
            "schema_mismatch",
            f'job "{job}" does not fit the {_TABLE_NAMES[destination.kind]} {destination.uri} '
            f'(version {rows[0]["latest_version"]}): '
            f"{problems[0]}{more}",
            detail="\n".join(problems))


def check_writer(plpy: Any, job: str, owner: str) -> None:
    rows = plpy.execute(plans.plan(plpy, queries.get("may_write_files"), ["name", "name"]), [owner, WRITE_FILES_ROLE])
    if not rows[0]["ok"]:
        raise errors.JobledgerError(
            "permission_denied",
            f'job "{job}": its owner {owner} may not write Parquet datasets (needs membership in {WRITE_FILES_ROLE})',
            hint=f"A superuser grants it: GRANT {WRITE_FILES_ROLE} TO {owner}.",
        )


def check_lake_writer(plpy: Any, job: str, owner: str, uri: str) -> None:
    """permission_denied unless ``owner`` may have the runner write the lake
    location ``uri`` (normalised, e.g. ``Delta.uri``): a superuser, or a
    grant of a prefix covering it (core.lake_grants).  For every lake
    destination (delta:, lance:): the writer is the runner, with its own
    storage credentials, so pg_write_server_files does not apply."""
    rows = plpy.execute(plans.plan(plpy, queries.get("may_write_lake"), ["name", "text"]), [owner, uri])
    if not rows[0]["ok"]:
        raise lake_grants.refused(job, owner, uri)


def check_dataset(job: str, destination: destinations.Parquet, produced: list[tuple[str, str]]) -> None:
    try:
        dataset_manifest.check_destination(destination.root, produced,
                                           create_if_missing=destination.create_if_missing,
                                           what=f'job "{job}"')
    except PermissionError as exc:
        raise errors.JobledgerError(
            "permission_denied",
            f"the database server (OS user {_os_user()}) cannot read the dataset directory "
            f"{destination.root}: {exc.strerror}",
            hint="The server reads the dataset's manifests at submit time and the runner writes them: "
                 "both must see the same directory (same machine or shared mount), readable by the server.",
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise errors.JobledgerError(
            "invalid_argument",
            f"{destination.root} is not a readable jobledger Parquet dataset: {exc}",
        ) from None


def _os_user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())
