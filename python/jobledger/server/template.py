"""Check a job template once, when the job is defined: PostgreSQL's own grammar decides.

A template is a SELECT written by a user, with ``{name}`` placeholders where
values stand.  It is stored exactly as written and never rewritten; what is
decided here, at define time:

* where the placeholders are.  sqlglot's tokenizer finds them, and so does
  PostgreSQL's own lexer (pglast's ``scan``); both must find the same
  ``{name}`` at the same places, and PostgreSQL's lexer may see no other
  brace.  A brace inside a string, a quoted identifier or a comment is text
  for both, or the parsers disagree and the template is refused;
* what the text is.  With each placeholder written as ``$n`` (what
  PostgreSQL reads as a value wherever a value may stand), PostgreSQL's
  grammar (``pgparse``) must read exactly one plain SelectStmt: no second
  statement, no INSERT/UPDATE/DELETE/MERGE even in WITH, no SELECT INTO, no
  FOR UPDATE/SHARE, no call of ``set_config``; each ``$n`` it reads must be
  one of the placeholders, at that placeholder's place, and no placeholder
  may be a whole ORDER BY, GROUP BY or DISTINCT ON item (a constant there
  means a column position);
* that rendering cannot change that reading (``check_rendering``): for
  every form of literal a placeholder's declared type can take, the rendered
  text must read as the template's tree with that literal's tree in the
  placeholder's place.

Only define_job imports this module (sqlglot and pglast's Python API are
slow to import); ``submit_job`` uses what was stored with the job version.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import re
import uuid
from typing import Any, Iterator

from jobledger.core import errors
from jobledger.server import literals, params, pgparse, render

# A placeholder name: what may stand between the braces.
NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
_NAME_RE = re.compile(NAME_PATTERN)

# Functions that change the session's configuration from inside a SELECT.
FORBIDDEN_FUNCTIONS = frozenset({"set_config"})

# Statements a template may not contain anywhere, by PostgreSQL node name.
_WRITES = {"InsertStmt": "INSERT", "UpdateStmt": "UPDATE", "DeleteStmt": "DELETE", "MergeStmt": "MERGE"}


@dataclasses.dataclass(frozen=True)
class Template:
    """A checked template: the text as written and its placeholder occurrences."""

    query: str
    spans: tuple[render.Span, ...]
    # Where the statement ends: before a terminating ";" (and any comment
    # after it), else the whole text.
    end: int

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(span.name for span in self.spans)


def parse_template(query: str) -> Template:
    """Check a template; raise JobledgerError (template_parse_error or
    template_not_select) if PostgreSQL's grammar does not read it as one
    plain SELECT with its placeholders where values stand."""
    if not isinstance(query, str) or not query.strip():
        raise errors.JobledgerError("template_parse_error", "the job query is empty")
    if "\0" in query:
        raise errors.JobledgerError("template_parse_error", "the job query contains a NUL character")
    found = _cache.get(query)
    if found is not None:
        return found
    spans, semicolon = _postgres_placeholders(query)
    _compare(query, spans, _sqlglot_placeholders(query, spans))
    statement = _one_statement(query, spans, semicolon)
    _check_statement(query, spans, statement)
    template = Template(query, spans, len(query) if semicolon is None else semicolon)
    if len(_cache) >= 256:
        _cache.clear()
    _cache[query] = template
    return template


# Checked templates of this session: define_job checks a template, then the
# ledger function that records it checks it again (it trusts no caller).
_cache: dict[str, Template] = {}


# --- finding placeholders, twice ----------------------------------------------


def _postgres_placeholders(query: str) -> tuple[tuple[render.Span, ...], int | None]:
    """``{name}`` as PostgreSQL's lexer reads the text: a ``{`` token, a word
    and a ``}`` token with nothing between them.  Any other brace is refused.
    Also where a terminating ``;`` is (None if there is none): one that only
    comments follow.  Any other ``;`` is left to the grammar, which reads
    it as a second statement."""
    parser = pgparse.pglast_parser()
    try:
        tokens = parser.scan(query)  # offsets in characters
    except parser.ParseError as error:
        # pglast's scan error: (message, character offset or None)
        offset = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], int) else None
        raise errors.JobledgerError(
            "template_parse_error", _where(query, offset, f"PostgreSQL cannot read the job query: {error.args[0]}")
        ) from None

    def text(token: Any) -> str:
        return query[token.start : token.end + 1]

    spans = []
    semicolon = None
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if text(token) == ";" and semicolon is None and all(
            t.name in ("SQL_COMMENT", "C_COMMENT") or text(t) == ";" for t in tokens[index + 1 :]
        ):
            semicolon = token.start
        if text(token) in ("{", "}"):
            triple = tokens[index : index + 3]
            if (
                len(triple) == 3
                and text(triple[0]) == "{"
                and text(triple[2]) == "}"
                and triple[1].start == token.end + 1
                and triple[2].start == triple[1].end + 1
                and _NAME_RE.fullmatch(text(triple[1]))
            ):
                spans.append(render.Span(token.start, triple[2].end + 1, text(triple[1])))
                index += 3
                continue
            raise errors.JobledgerError(
                "template_parse_error",
                _where(query, token.start, f"unexpected {text(token)!r}")
                + f": a placeholder is written {{name}} with no spaces, where name matches {NAME_PATTERN}",
            )
        index += 1
    return tuple(spans), semicolon


def _sqlglot_placeholders(query: str, postgres: tuple[render.Span, ...]) -> tuple[render.Span, ...]:
    """``{name}`` as sqlglot's PostgreSQL tokenizer reads the text.

    A text sqlglot cannot tokenize but PostgreSQL can is accepted when it
    has no placeholder at all: PostgreSQL's grammar decides.
    """
    import sqlglot.errors
    from sqlglot import tokens as sqlglot_tokens
    from sqlglot.dialects import postgres as sqlglot_postgres

    kind = sqlglot_tokens.TokenType
    try:
        tokens = sqlglot_postgres.Postgres().tokenize(query)
    except sqlglot.errors.SqlglotError as error:
        if not postgres:
            return ()
        raise errors.JobledgerError(
            "template_parse_error", f"the job query's placeholders cannot be found: sqlglot cannot read it: {error}"
        ) from None
    spans = []
    for index in range(len(tokens) - 2):
        open_brace, word, close_brace = tokens[index : index + 3]
        if (
            open_brace.token_type == kind.L_BRACE
            and close_brace.token_type == kind.R_BRACE
            and word.start == open_brace.end + 1
            and close_brace.start == word.end + 1
            and _NAME_RE.fullmatch(query[word.start : word.end + 1])
        ):
            spans.append(render.Span(open_brace.start, close_brace.end + 1, query[word.start : word.end + 1]))
    return tuple(spans)


def _compare(query: str, postgres: tuple[render.Span, ...], sqlglot: tuple[render.Span, ...]) -> None:
    """Refuse a text whose placeholders the two parsers read differently."""
    if postgres == sqlglot:
        return
    different = sorted(set(postgres) ^ set(sqlglot), key=lambda span: span.start)[0]
    who = "PostgreSQL" if different in postgres else "sqlglot"
    raise errors.JobledgerError(
        "template_parse_error",
        _where(query, different.start, "sqlglot and PostgreSQL read the job query differently")
        + f": only {who} reads {{{different.name}}} there as a placeholder",
        hint="Placeholders must not touch quotes, comments or operators in ways the parsers could read differently.",
    )


# --- what PostgreSQL's grammar reads ----------------------------------------------


def _one_statement(query: str, spans: tuple[render.Span, ...], semicolon: int | None) -> dict[str, Any]:
    """The one statement of the text with placeholders written ``$n``
    (``semicolon``: where a terminating ``;`` is, if any)."""
    sql = render.parameter_text(query, spans)
    try:
        statements = pgparse.parse(sql)
    except pgparse.ParseError as error:
        offset = None if error.offset is None else _original_offset(spans, error.offset)
        # The message quotes the $n text; the author wrote {name}.
        message = re.sub(r"\$([0-9]+)\b", lambda m: _marker_name(spans, int(m.group(1))), error.message)
        raise errors.JobledgerError(
            "template_parse_error", _where(query, offset, f"PostgreSQL cannot parse the job query: {message}")
        ) from None
    if not statements:
        raise errors.JobledgerError("template_parse_error", "the job query is empty")
    if len(statements) > 1:
        raise errors.JobledgerError(
            "template_not_select",
            f"a job must be a single SELECT statement; PostgreSQL reads {len(statements)} statements",
        )
    statement = statements[0]["stmt"]
    kind = next(iter(statement))
    if kind != "SelectStmt":
        raise errors.JobledgerError("template_not_select", f"a job must be a SELECT query, not {_statement_name(kind)}")
    return statement


def _marker_name(spans: tuple[render.Span, ...], number: int) -> str:
    return "{" + spans[number - 1].name + "}" if 1 <= number <= len(spans) else f"${number}"


def _statement_name(kind: str) -> str:
    names = {**_WRITES, "VariableSetStmt": "SET", "CopyStmt": "COPY", "ExplainStmt": "EXPLAIN",
             "CallStmt": "CALL", "DoStmt": "DO", "TransactionStmt": "a transaction statement"}
    if kind in names:
        return names[kind]
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", kind.removesuffix("Stmt")).upper()


def _original_offset(spans: tuple[render.Span, ...], offset: int) -> int:
    """The offset in the template of an offset in its ``$n`` text."""
    shift = 0
    for index, span in enumerate(spans):
        written = len(f"${index + 1}")
        start = span.start + shift
        if offset < start:
            break
        if offset < start + written:
            return span.start
        shift += written - (span.end - span.start)
    return offset - shift


def _check_statement(query: str, spans: tuple[render.Span, ...], statement: dict[str, Any]) -> None:
    """Refuse what a job may not do, and placeholders PostgreSQL does not read as values."""
    sql = render.parameter_text(query, spans).encode("utf-8")
    expected = _marker_offsets(query, spans)
    seen = set()
    for kind, fields, parent_kind, parent_key in _nodes(statement):
        if kind in _WRITES:
            _refuse_not_select(f"{_WRITES[kind]} is not allowed, not even in a WITH clause")
        if fields.get("intoClause"):
            _refuse_not_select("SELECT ... INTO creates a table and is not allowed")
        if fields.get("lockingClause"):
            _refuse_not_select("SELECT ... FOR UPDATE/SHARE locks rows and is not allowed")
        if kind == "FuncCall":
            name = fields.get("funcname", [{}])[-1].get("String", {}).get("sval", "")
            if name.lower() in FORBIDDEN_FUNCTIONS:
                _refuse_not_select(f"calling {name}() changes the session's configuration and is not allowed")
        if kind == "ParamRef":
            number, location = fields.get("number"), fields.get("location")
            if expected.get(number) != location:
                raise errors.JobledgerError(
                    "template_parse_error",
                    _where(query, _original_offset(spans, pgparse.char_offset(sql, location or 0)),
                           "bind parameters such as $1 are not supported"),
                    hint="write a placeholder as {name}",
                )
            seen.add(number)
            problem = _position_problem(parent_kind, parent_key)
            if problem:
                span = spans[number - 1]
                raise errors.JobledgerError(
                    "template_parse_error",
                    _where(query, span.start, f"placeholder {{{span.name}}} cannot stand there") + f": {problem}",
                    hint="a placeholder stands for one value, where a constant could be written",
                )
    for number in sorted(set(expected) - seen):
        span = spans[number - 1]
        raise errors.JobledgerError(
            "template_parse_error",
            _where(query, span.start, f"PostgreSQL does not read placeholder {{{span.name}}} as a value"),
            hint="a placeholder stands for one value, where a constant could be written, apart from names and words",
        )


def _marker_offsets(query: str, spans: tuple[render.Span, ...]) -> dict[int, int]:
    """n -> the byte offset of ``$n`` in the template's ``$n`` text (where
    PostgreSQL's grammar must find parameter n)."""
    offsets = {}
    position = 0  # bytes written so far
    previous = 0  # characters of the template consumed so far
    for index, span in enumerate(spans):
        position += len(query[previous : span.start].encode("utf-8"))
        offsets[index + 1] = position
        position += len(f"${index + 1}")
        previous = span.end
    return offsets


def _refuse_not_select(reason: str) -> None:
    raise errors.JobledgerError("template_not_select", f"a job must only read: {reason}")


def _position_problem(parent_kind: str | None, parent_key: str | None) -> str | None:
    """Why a value cannot stand as this child of ``parent_kind``, or None.

    PostgreSQL drops parentheses before it sees these, so ``({x})`` is the
    same as ``{x}``.
    """
    if parent_kind == "SortBy" and parent_key == "node":
        return "a whole ORDER BY item that is a constant means a column position, or orders nothing"
    if parent_key == "groupClause" or parent_kind in ("GroupingSet",) or (
        parent_kind == "RowExpr" and parent_key == "group-args"
    ):
        return "a whole GROUP BY item that is a constant means a column position"
    if parent_key == "distinctClause":
        return "a whole DISTINCT ON item that is a constant means a column position"
    return None


def _nodes(tree: Any) -> Iterator[tuple[str, dict[str, Any], str | None, str | None]]:
    """Every node of a JSON parse tree: (kind, fields, parent kind, parent field).

    libpg_query writes a field that holds a node of a fixed kind without the
    kind's wrapper (``withClause: {"ctes": [...]}``, the ``larg``/``rarg``
    of a UNION, a window's ``over``): such a dict of fields counts as a
    node whose kind is its field's name, so nothing is left unvisited.

    A parenthesised list in GROUP BY (a RowExpr there) is a list of grouping
    items, so its elements count as GROUP BY items: their field is reported
    as ``group-args``.
    """
    pending: list[tuple[Any, str | None, str | None]] = [(tree, None, None)]
    while pending:
        value, parent_kind, parent_key = pending.pop()
        if isinstance(value, list):
            pending.extend((item, parent_kind, parent_key) for item in value)
            continue
        if not isinstance(value, dict):
            continue
        wrapped = len(value) == 1 and next(iter(value))[:1].isupper() and isinstance(next(iter(value.values())), dict)
        if wrapped:
            kind, fields = next(iter(value.items()))
        else:
            kind, fields = parent_key or "", value
        yield kind, fields, parent_kind, parent_key
        for key, child in fields.items():
            if kind == "RowExpr" and key == "args" and parent_key in ("groupClause", "group-args"):
                key = "group-args"
            pending.append((child, kind, key))


def _where(query: str, offset: int | None, message: str) -> str:
    """``message at line L, column C`` for a character offset (or the message alone)."""
    if offset is None:
        return message
    line = query.count("\n", 0, offset) + 1
    column = offset - query.rfind("\n", 0, offset)
    return f"{message} at line {line}, column {column}"


# --- rendering cannot change what PostgreSQL reads ------------------------------


def probe_values(declaration: params.Declaration) -> list[params.BoundValue]:
    """One value of every literal form a parameter's declaration can take
    (see ``literals``): each differs in how its text begins or ends."""
    name, kind = declaration.name, declaration.type
    if kind is None:
        samples: list[object] = ["probe", "pro\\be", decimal.Decimal(1), decimal.Decimal("1.5"),
                                 decimal.Decimal(-1), True, None]
        return [params.BoundValue(name, None, value) for value in samples]
    scalar = _SAMPLES[kind.base]
    if kind.is_array:
        values: list[object] = [tuple(scalar), (), None]
    else:
        values = [*scalar, None]
    return [params.BoundValue(name, kind, value) for value in values]


_SAMPLES: dict[str, list[object]] = {
    "text": ["probe", "pro\\be"],
    "integer": [1, -1],
    "bigint": [1, -1],
    "numeric": [decimal.Decimal("1.5"), decimal.Decimal("-1.5")],
    "boolean": [True],
    "date": [datetime.date(2026, 1, 1)],
    "timestamptz": [datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)],
    "uuid": [uuid.UUID(int=1)],
    "jsonb": ['{"a": 1}'],
}


def check_rendering(template: Template, declarations: params.Declarations) -> None:
    """Prove that no value of its declared type makes a placeholder read as
    anything but that value (template_parse_error naming the placeholder)."""
    if not template.spans:
        return
    renderer = render.Renderer(template.query, template.spans, template.end)
    probes = {d.name: probe_values(d) for d in declarations.items if d.name in template.placeholders}
    rounds = max(len(values) for values in probes.values())
    for round_ in range(rounds):
        texts = {name: literals.literal(values[min(round_, len(values) - 1)]) for name, values in probes.items()}
        if renderer.check(renderer.splice(texts), texts) is None:
            continue
        for name, values in probes.items():
            single = {other: literals.literal(v[0]) for other, v in probes.items()}
            single[name] = texts[name]
            if renderer.check(renderer.splice(single), single) is not None:
                span = next(s for s in template.spans if s.name == name)
                signed = template.query[: span.start].rstrip().rstrip("(").rstrip().endswith(("-", "+"))
                raise errors.JobledgerError(
                    "template_parse_error",
                    _where(template.query, span.start, f"placeholder {{{name}}} cannot stand there")
                    + f": PostgreSQL reads a value such as {texts[name]} in that place as something else",
                    hint=(f"a sign before a placeholder merges with a number: write 0 - {{{name}}}, "
                          "or declare the parameter's type" if signed else
                          f"put it in parentheses, ({{{name}}}), or rewrite the expression around it"),
                )
        raise errors.JobledgerError(
            "template_parse_error", "the job query cannot be rendered faithfully with its placeholders' values"
        )
