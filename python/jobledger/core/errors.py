"""Errors a user can cause, each with a stable category and a SQLSTATE.

The category is the contract: tests, the CLI and client code match on it, so
a category is never renamed.  In SQL the category is the first line of the
error's DETAIL (``category: <name>``); the SQLSTATE is chosen so that callers
that only look at SQLSTATEs still get a fitting class.
"""

from __future__ import annotations


# category -> SQLSTATE.  Categories are stable names; add, never rename.
SQLSTATES: dict[str, str] = {
    "unknown_job": "42704",  # undefined_object
    "missing_parameters": "22023",  # invalid_parameter_value
    "unknown_parameters": "22023",
    "invalid_parameter": "22023",
    "template_parse_error": "42601",  # syntax_error
    "template_not_select": "0A000",  # feature_not_supported
    "destination_missing": "42P01",  # undefined_table
    "schema_mismatch": "42804",  # datatype_mismatch
    "permission_denied": "42501",  # insufficient_privilege
    "version_mismatch": "55000",  # object_not_in_prerequisite_state
    "invalid_argument": "22023",
    "job_busy": "55006",  # object_in_use
    "unknown_run": "42704",  # undefined_object
    "run_fenced": "55000",  # object_not_in_prerequisite_state
    # Arrow results and Parquet datasets.
    "unsupported_type": "0A000",  # feature_not_supported: a column type with no Arrow mapping
    "value_not_representable": "22003",  # numeric_value_out_of_range: NaN numeric, infinite dates
    "result_too_large": "54000",  # program_limit_exceeded: the result passed its size cap
    "dataset_conflict": "40001",  # serialization_failure: concurrent commits kept winning
    # Outputs (0.4.0).
    "no_result": "55000",  # object_not_in_prerequisite_state: the run has no such output (yet)
    # Operations (0.4.0): retry_run, and errors the jobledger CLI reports itself.
    "invalid_run_state": "55000",  # object_not_in_prerequisite_state: e.g. retrying a run that succeeded
    "ambiguous_run": "21000",  # cardinality_violation: a run id prefix that matches several runs
    "job_file_invalid": "22023",  # invalid_parameter_value: a YAML job file that is not a job
    "connection_failed": "08006",  # connection_failure: the CLI cannot reach the database
    "not_installed": "55000",  # the database lacks the extension, or has a version too old
    "wait_timeout": "57014",  # query_canceled: submit --wait gave up before the run ended
    # The runner (0.5.0): a run the runner itself failed on (a value it cannot
    # handle, a bug), recorded as the run's error_category; the runner goes on.
    "runner_error": "XX000",  # internal_error
    # 0.5.0: an idempotency key its submitter already used with other parameters.
    "idempotency_conflict": "23505",  # unique_violation
    # 0.5.0: schedules (pg_cron) and backfills.
    "feature_not_available": "0A000",  # feature_not_supported: schedules without pg_cron
    "unknown_schedule": "42704",  # undefined_object: no schedule of that name for the calling role
    # 0.6.0: delta: destinations: the object store or file system failed (unreachable, throttled ...).
    "storage_error": "58030",  # io_error
}

DETAIL_PREFIX = "category: "


class JobledgerError(Exception):
    """A rejection with a clear message, a category and optional detail lines.

    A plain class, not a dataclass: it is imported by every session's first
    submit_job, and importing dataclasses costs more than the rest."""

    def __init__(self, category: str, message: str, detail: str | None = None, hint: str | None = None) -> None:
        if category not in SQLSTATES:
            raise ValueError(f"unknown error category {category!r}")
        super().__init__(category, message, detail, hint)
        self.category = category
        self.message = message
        self.detail = detail
        self.hint = hint

    def __repr__(self) -> str:
        return (f"JobledgerError(category={self.category!r}, message={self.message!r}, "
                f"detail={self.detail!r}, hint={self.hint!r})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobledgerError) and self.args == other.args

    __hash__ = Exception.__hash__

    def __str__(self) -> str:
        return self.message

    @property
    def sqlstate(self) -> str:
        return SQLSTATES[self.category]

    @property
    def full_detail(self) -> str:
        """DETAIL as sent to the client: the category line, then any detail."""
        head = DETAIL_PREFIX + self.category
        return head if not self.detail else f"{head}\n{self.detail}"


def category_of_detail(detail: str | None) -> str | None:
    """The category named by an error's DETAIL, or None if it names none."""
    if not detail:
        return None
    first = detail.split("\n", 1)[0]
    if first.startswith(DETAIL_PREFIX):
        return first[len(DETAIL_PREFIX) :]
    return None


def from_server(message: str, detail: str | None, hint: str | None) -> JobledgerError | None:
    """The JobledgerError a jobledger SQL function raised (its DETAIL names
    the category), as PL/Python code that called it sees it; else None."""
    category = category_of_detail(detail)
    if category not in SQLSTATES:
        return None
    rest = detail.split("\n", 1)[1] if detail and "\n" in detail else None
    return JobledgerError(category, message, detail=rest, hint=hint)
