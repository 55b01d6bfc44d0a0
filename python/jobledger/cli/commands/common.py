"""What every command shares: the connection, errors, exit codes, output."""

from __future__ import annotations

import contextlib
import datetime
import decimal
import os
import re
import sys
import uuid
from typing import Any, Callable, Iterator

import click
import psycopg
from psycopg import rows

from jobledger import exact_json
from jobledger.cli import durations
from jobledger.core import errors, named_sql

# Exit codes (docs/operations.md, "The jobledger command").
OK = 0
ERROR = 1  # any error: the database refused, cannot connect, not found, invalid input
USAGE = 2  # click's: a bad option or argument
RUN_FAILED = 3  # submit/retry --wait: the run ended failed
RUN_CANCELLED = 4  # submit/retry --wait: the run ended cancelled
WAIT_TIMEOUT = 5  # submit/retry --wait --timeout: still pending or running


_QUERIES = named_sql.beside(__file__, "queries.sql")


def query(name: str) -> str:
    """The block ``name`` of queries.sql (the commands' SQL)."""
    return _QUERIES.get(name)


class CliError(click.ClickException):
    """An error printed as ``error: <message> (<category>)``."""

    def __init__(self, category: str, message: str, exit_code: int = ERROR) -> None:
        super().__init__(message)
        self.category = category
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message} ({self.category})", err=True)


def _sqlstate_category(sqlstate: str | None) -> str:
    if sqlstate == "42501":
        return "permission_denied"
    if sqlstate and sqlstate.startswith("08"):
        return "connection_failed"
    if sqlstate == "42883":
        return "not_installed"  # a function this command needs is missing: the extension is too old
    return "database_error"


def from_database_error(exc: psycopg.Error) -> CliError:
    message = exc.diag.message_primary or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    message = re.sub(r"^plpy\.\w+: ", "", message.strip())  # PL/Python names its exception class
    category = errors.category_of_detail(exc.diag.message_detail) or _sqlstate_category(exc.sqlstate)
    return CliError(category, message.strip())


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Database and jobledger errors as CliErrors (one line, category, exit 1)."""
    try:
        yield
    except psycopg.Error as exc:
        raise from_database_error(exc) from None
    except errors.JobledgerError as exc:
        raise CliError(exc.category, exc.message) from None


class Group(click.Group):
    """A click group whose commands report errors as one line with a category."""

    def invoke(self, ctx: click.Context) -> Any:
        with reported():
            return super().invoke(ctx)


# ---- connecting ------------------------------------------------------------

dsn_option = click.option(
    "--dsn", envvar=None,
    help="libpq connection string or URI (default: DATABASE_URL, else the PG* variables, as psql).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table (for scripts).")


def conninfo(dsn: str | None) -> str:
    return dsn if dsn is not None else os.environ.get("DATABASE_URL", "")


def connect(dsn: str | None, need: tuple[int, ...] = (0, 4, 0)) -> psycopg.Connection:
    """An autocommit connection with dict rows to a database that has
    jobledger ``need`` or later; json and jsonb values loaded by exact_json
    (a parameter of 5,000 digits is printed, not a traceback)."""
    try:
        # prepare_threshold=None: no server-side prepared statements, which a
        # pooler in transaction mode would lose or mix up (`runs --watch` polls).
        conn = psycopg.connect(conninfo(dsn), autocommit=True, row_factory=rows.dict_row,
                               application_name="jobledger cli", prepare_threshold=None)
    except psycopg.OperationalError as exc:
        first = (str(exc).strip().splitlines() or ["no details"])[0]
        raise CliError("connection_failed", f"cannot connect to the database: {first}") from None
    exact_json.register(conn)
    found = conn.execute(query("extension_version")).fetchone()
    if found is None:
        dbname = conn.info.dbname
        conn.close()
        raise CliError("not_installed", f"the extension jobledger is not installed in database {dbname}")
    have = tuple(int(part) for part in found["extversion"].split("."))
    if have < need:
        conn.close()
        raise CliError("not_installed",
                       f"database {conn.info.dbname} has jobledger {found['extversion']}; this command needs "
                       f"{'.'.join(map(str, need))} or later (make install, then ALTER EXTENSION jobledger UPDATE)")
    return conn


# ---- runs by id or prefix ------------------------------------------------------

_HEX = re.compile(r"[0-9a-f]+")


def resolve_run(conn: psycopg.Connection, text: str) -> uuid.UUID:
    """A run id, or a unique prefix of one (at least 4 hex digits) among the
    runs this role may see."""
    digits = text.strip().lower().replace("-", "")
    if not _HEX.fullmatch(digits) or not 4 <= len(digits) <= 32:
        raise CliError("unknown_run", f"{text!r} is not a run id (a UUID, or its first 4 or more hex digits)")
    if len(digits) == 32:
        found = conn.execute(query("run_exists"), {"id": uuid.UUID(digits)}).fetchall()
    else:
        low, high = uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))
        found = conn.execute(query("runs_with_prefix"), {"low": low, "high": high}).fetchall()
    if not found:
        raise CliError("unknown_run", f"there is no run {text}")
    if len(found) > 1:
        raise CliError("ambiguous_run", f"{text} matches several runs: {', '.join(str(r['id']) for r in found)}, …")
    return found[0]["id"]


# ---- output ----------------------------------------------------------------------


def console(err: bool = False) -> Any:
    import rich.console

    stream = sys.stderr if err else sys.stdout
    # Piped: wide enough that a table's rows stay one line each.
    width = None if stream.isatty() else 200
    return rich.console.Console(file=stream, width=width, soft_wrap=False, highlight=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value) if isinstance(value, uuid.UUID) else float(value)
    return str(value)


def print_json(value: Any) -> None:
    click.echo(exact_json.dumps(value, default=_json_default, indent=2))


def table(title: str | None, columns: list[str], rows_: list[list[Any]]) -> None:
    import rich.table

    grid = rich.table.Table(title=title, title_justify="left", box=None, header_style="bold", pad_edge=False)
    for name in columns:
        grid.add_column(name, overflow="fold")
    for row in rows_:
        grid.add_row(*[cell_text(v) for v in row])
    console().print(grid)


def cell_text(value: Any) -> str:
    from rich.markup import escape

    if value is None:
        return ""
    if isinstance(value, datetime.timedelta):
        return durations.show(value)
    if isinstance(value, datetime.datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (dict, list)):
        return escape(exact_json.dumps(value))
    return escape(str(value))


def short(run_id: Any) -> str:
    return str(run_id)[:8]


def duration_option(name: str, help_: str) -> Callable[[Any], Any]:
    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime.timedelta | None:
        if value is None:
            return None
        try:
            return durations.parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return click.option(name, callback=convert, metavar="DURATION", help=help_)
