"""Who may write where in the lake: the rule for ``delta:`` and ``lance:``
destinations (docs/security.md, "Lake destinations").

The runner writes a lake location with its own storage credentials, so the
database server's ``pg_write_server_files`` says nothing about it.  A
superuser grants roles location prefixes instead
(``jobledger.allow_lake_prefix``, table ``jobledger.lake_grant``);
``jobledger_internal.lake_write_allowed(owner, uri)`` is the one question,
asked by define_job and submit_job (``server.lake_preflight.check_lake_writer``)
and by the runner right before it writes (``runner.lake.check_lake_writer``).

Pure Python: the server and the runner share it.
"""

from __future__ import annotations

from jobledger.core import destinations, errors


def prefix(text: str) -> str:
    """A grant's prefix in the form lake destinations are stored in: a local
    directory or ``s3://bucket[/prefix]`` (``destinations.lake_uri``, which
    also accepts a whole bucket here).  Options (``?``) and blanks have no
    place in it; ``invalid_argument`` otherwise."""
    what = f"the lake prefix {text!r}"
    if not text or "?" in text or any(c.isspace() or ord(c) < 32 for c in text):
        raise errors.JobledgerError(
            "invalid_argument", f"{what} must be a location without options or blanks",
            hint="For example /data/lake, s3://lake/sales or s3://lake (a whole bucket).")
    return destinations.lake_uri(text, what, whole_bucket=True)


def covers(granted: str, uri: str) -> bool:
    """Whether a grant of ``granted`` covers the location ``uri`` (both
    normalised): the same location or one below it, by whole path components
    (/data/lake covers /data/lake/sales, not /data/lakehouse).  The rule in
    Python; SQL's is jobledger_internal.lake_write_allowed, and
    tests/integration/test_lake_grants.py holds the two to the same answers."""
    return uri == granted or uri.startswith(granted + "/")


def refused(job: str, owner: str, uri: str, *, when: str = "") -> errors.JobledgerError:
    """The permission_denied error for an owner with no grant covering ``uri``."""
    return errors.JobledgerError(
        "permission_denied",
        f'job "{job}": its owner {owner} may not write the lake location {uri}{when}',
        hint=f"A superuser grants it: SELECT jobledger.allow_lake_prefix({_literal(owner)}, {_literal(uri)}); "
             "(or a prefix of it; the grants are listed in jobledger.lake_grants).",
    )


def _literal(text: str) -> str:
    """``text`` as an SQL string literal (standard_conforming_strings), for a
    hint a DBA may paste; never executed here."""
    return "'" + text.replace("'", "''") + "'"
