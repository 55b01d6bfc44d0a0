"""Parse and check a job template: one read-only SELECT with ``{name}`` placeholders.

A job is a SELECT written by a user and run later, many times, with values that
other users submit.  Everything that can be decided about the query text is
decided here, once, when the job is defined:

* it is exactly one statement, and that statement only reads (see
  ``_forbidden_node`` for what is refused and why);
* every ``{name}`` is found by sqlglot's tokenizer, so braces inside string
  literals, dollar-quoted strings, quoted identifiers and comments are text, not
  placeholders;
* every placeholder stands where a value may stand (not a name, keyword,
  ORDER BY / GROUP BY / DISTINCT ON item);
* every literal shape that ``render`` can put in place of a placeholder
  survives sqlglot's generate/parse round trip at that position, so rendering a
  well-typed value can only fail on a bug, never on the user's query.

The result, a ``Template``, is immutable and safe to cache: ``render`` works on
a copy of its tree.

The dialect is sqlglot's PostgreSQL dialect with three adjustments, each needed
for rendered SQL to mean exactly what the tree says (see ``JobledgerPostgres``).
"""

from __future__ import annotations

import dataclasses
import re

import sqlglot
import sqlglot.errors
import sqlglot.expressions as exp
from sqlglot import tokens as sqlglot_tokens
from sqlglot.dialects import postgres as sqlglot_postgres

from jobledger import errors

_TokenType = sqlglot_tokens.TokenType
_Token = sqlglot_tokens.Token

# A placeholder name: what may stand between the braces.
NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
_NAME_RE = re.compile(NAME_PATTERN)

# The text the tokenizer step gives each placeholder before parsing:
# "{name}#<occurrence>".  Braces cannot occur in a token the user wrote as a
# bare word, so these can never be confused with the user's own ``:name``.
_MARK_RE = re.compile(r"\{(" + NAME_PATTERN + r")\}#([0-9]+)")

# Functions that change the session's configuration or role from inside a
# SELECT.  Matched case-insensitively on the function's own name, with or
# without a schema.
FORBIDDEN_FUNCTIONS = frozenset({"set_config"})

# Token types whose text is a plain '...' (or N'...') string constant: with
# standard_conforming_strings off PostgreSQL reads a backslash in them as an
# escape character, so they must never contain one in rendered SQL.
_PLAIN_STRING_TOKENS = frozenset({_TokenType.STRING, _TokenType.NATIONAL_STRING})


class JobledgerPostgres(sqlglot_postgres.Postgres):
    """sqlglot's PostgreSQL dialect, adjusted so rendered SQL means what the tree says.

    * ``E'\\v'``: PostgreSQL's escape strings know no ``\\v`` escape (it reads
      ``v``), but sqlglot 30.30.0 maps vertical tab to ``\\v`` when writing and
      ``\\v`` to vertical tab when reading.  Declaring ``\\v`` as "just v" makes
      sqlglot read it as PostgreSQL does and write U+000B as ``\\x0b``.
    * Function names are written as they were read.  The default upper-cases
      them, quoted ones included (``"myFunc"(1)`` became ``"MYFUNC"(1)``, a
      different function).
    * A placeholder ``exp.Placeholder(this=name)`` is written ``{name}``, the
      template syntax, so a template tree can be written back as a template.
    """

    NORMALIZE_FUNCTIONS = False
    UNESCAPED_SEQUENCES = {"\\a": "a", "\\v": "v"}

    class Generator(sqlglot_postgres.Postgres.Generator):
        def placeholder_sql(self, expression: exp.Placeholder) -> str:
            name = expression.this
            if isinstance(name, str) and _NAME_RE.fullmatch(name):
                return "{" + name + "}"
            return super().placeholder_sql(expression)


DIALECT = JobledgerPostgres()
# Rendered SQL is checked by reading it back with sqlglot's own, unadjusted
# PostgreSQL dialect.
CHECK_DIALECT = "postgres"
_CHECK = sqlglot.Dialect.get_or_raise(CHECK_DIALECT)


@dataclasses.dataclass(frozen=True)
class Template:
    """A checked job template.

    ``expression`` is sqlglot's tree of the query with one
    ``exp.Placeholder(this=name)`` per placeholder occurrence, in the canonical
    form that ``canonical_sql`` writes; treat it as read-only (``render`` copies
    it).  ``placeholders`` is the set of names used, each possibly several times.
    """

    query: str
    expression: exp.Expr
    placeholders: frozenset[str]
    canonical_sql: str


@dataclasses.dataclass(frozen=True)
class _Occurrence:
    """Where one placeholder was written, for messages that point at it."""

    name: str
    line: int
    column: int


def parse_template(query: str) -> Template:
    """Parse, check and normalise a job template; raise JobledgerError if it is refused."""
    if not isinstance(query, str) or not query.strip():
        raise errors.JobledgerError("template_parse_error", "the job query is empty")
    tree, occurrences = _parse(query)
    _check_statement(tree, query)
    _claim_placeholders(tree, occurrences)
    _check_positions(tree, occurrences)
    _normalise_strings(tree)
    canonical_sql, canonical = _canonicalise(tree)
    _check_rendering(canonical, occurrences)
    names = frozenset(node.this for node in canonical.find_all(exp.Placeholder))
    return Template(
        query=query, expression=canonical, placeholders=names, canonical_sql=canonical_sql
    )


# --- tokenizing and parsing -------------------------------------------------


def _parse(query: str) -> tuple[exp.Expr, list[_Occurrence]]:
    """Tokenize, turn ``{name}`` token triples into placeholders, parse one statement."""
    try:
        tokens = DIALECT.tokenize(query)
    except sqlglot.errors.SqlglotError as error:
        raise errors.JobledgerError(
            "template_parse_error", f"the job query cannot be read: {error}"
        ) from None
    _refuse_unicode_escapes(tokens, query)
    tokens, occurrences = _mark_placeholders(tokens, query)
    try:
        statements = DIALECT.parser().parse(tokens, query)
    except sqlglot.errors.ParseError as error:
        raise errors.JobledgerError(
            "template_parse_error", _describe_parse_error(error)
        ) from None
    except sqlglot.errors.SqlglotError as error:
        raise errors.JobledgerError(
            "template_parse_error", f"the job query cannot be parsed: {error}"
        ) from None
    except RecursionError:
        raise errors.JobledgerError(
            "template_parse_error", "the job query is nested too deeply to be parsed"
        ) from None
    # A comment before a lone ";" comes back as an exp.Semicolon holding it.
    statements = [s for s in statements if s is not None and not isinstance(s, exp.Semicolon)]
    if not statements:
        raise errors.JobledgerError("template_parse_error", "the job query is empty")
    if len(statements) > 1:
        raise errors.JobledgerError(
            "template_not_select",
            f"a job must be a single SELECT statement; found {len(statements)} statements",
        )
    return statements[0], occurrences


def _mark_placeholders(
    tokens: list[_Token], query: str
) -> tuple[list[_Token], list[_Occurrence]]:
    """Replace each adjacent ``{`` name ``}`` triple by tokens that parse as a placeholder.

    The replacement is ``:`` followed by a word, which sqlglot's parser turns
    into ``exp.Placeholder(this=word)`` wherever an expression (or, as it
    happens, a name) may stand; the word carries the name and the occurrence
    number.  Any brace left over is an error: PostgreSQL has no other use for
    braces outside strings.
    """
    result: list[_Token] = []
    occurrences: list[_Occurrence] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        triple = tokens[index : index + 3]
        if _is_placeholder(triple, query):
            open_brace, word, close_brace = triple
            name = query[word.start : word.end + 1]
            line, column = _line_column(query, open_brace.start)
            marker = "{%s}#%d" % (name, len(occurrences))
            occurrences.append(_Occurrence(name, line, column))
            result.append(
                _Token(_TokenType.COLON, ":", token.line, token.col, token.start, token.start)
            )
            result.append(
                _Token(
                    _TokenType.VAR,
                    marker,
                    close_brace.line,
                    close_brace.col,
                    open_brace.start,
                    close_brace.end,
                    [*open_brace.comments, *word.comments, *close_brace.comments],
                )
            )
            index += 3
            continue
        if token.token_type in (_TokenType.L_BRACE, _TokenType.R_BRACE):
            line, column = _line_column(query, token.start)
            raise errors.JobledgerError(
                "template_parse_error",
                f"unexpected {token.text!r} at line {line}, column {column}: "
                "a placeholder is written {name} with no spaces, "
                f"where name matches {NAME_PATTERN}",
            )
        result.append(token)
        index += 1
    return result, occurrences


def _is_placeholder(triple: list[_Token], query: str) -> bool:
    """True for ``{`` + a bare word + ``}`` written with nothing in between."""
    if len(triple) != 3:
        return False
    open_brace, word, close_brace = triple
    return (
        open_brace.token_type == _TokenType.L_BRACE
        and close_brace.token_type == _TokenType.R_BRACE
        and word.start == open_brace.end + 1
        and close_brace.start == word.end + 1
        and _NAME_RE.fullmatch(query[word.start : word.end + 1]) is not None
    )


def _refuse_unicode_escapes(tokens: list[_Token], query: str) -> None:
    """Refuse ``U&'...'`` and ``U&"..."``: PostgreSQL rejects them when
    standard_conforming_strings is off, and sqlglot reads ``U&"x"`` as ``U & "x"``."""
    for index, token in enumerate(tokens):
        following = tokens[index + 1 : index + 3]
        unicode_identifier = (
            token.token_type == _TokenType.VAR
            and token.text.upper() == "U"
            and len(following) == 2
            and following[0].token_type == _TokenType.AMP
            and following[0].start == token.end + 1
            and following[1].token_type == _TokenType.IDENTIFIER
            and following[1].start == following[0].end + 1
        )
        if token.token_type == _TokenType.UNICODE_STRING or unicode_identifier:
            line, column = _line_column(query, token.start)
            raise errors.JobledgerError(
                "template_parse_error",
                f"U& escapes (line {line}, column {column}) are not supported: "
                "they are rejected when standard_conforming_strings is off",
                hint="write the character itself, or use an E'...' string with \\u escapes",
            )


def _describe_parse_error(error: sqlglot.errors.ParseError) -> str:
    """sqlglot's message with its line and column, without terminal colour codes."""
    details = error.errors[0] if error.errors else {}
    description = str(details.get("description") or error)
    description = re.sub(
        r"<Token token_type: TokenType\.SENTINEL[^>]*>", "end of query", description
    )
    line, column = details.get("line"), details.get("col")
    where = f" at line {line}, column {column}" if line and column else ""
    return f"the job query cannot be parsed{where}: {description}"


def _line_column(query: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line = query.count("\n", 0, offset) + 1
    column = offset - query.rfind("\n", 0, offset)
    return line, column


# --- what a job may be ------------------------------------------------------

# Nodes that write, lock, change settings or hide unparsed text, anywhere in the
# tree.  A SELECT can hold some of them: data-modifying CTEs, SELECT ... INTO,
# FOR UPDATE/SHARE.
_WRITES = (exp.DML, exp.DDL)
_STATEMENTS = (
    exp.Command,
    exp.Set,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Grant,
    exp.Revoke,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Comment,
    exp.Analyze,
    exp.Use,
)


def _check_statement(tree: exp.Expr, query: str) -> None:
    """Refuse anything but a read-only SELECT (set operations of SELECTs included)."""
    if not _is_query(tree):
        if isinstance(tree, exp.Command):
            kind = str(tree.this).upper()
        else:
            kind = _statement_name(tree) or _first_word(query)
        raise errors.JobledgerError(
            "template_not_select", f"a job must be a SELECT query, not {kind}"
        )
    for node in tree.walk():
        problem = _forbidden_node(node)
        if problem:
            raise errors.JobledgerError("template_not_select", f"a job must only read: {problem}")


def _is_query(tree: exp.Expr) -> bool:
    """A SELECT, a UNION/INTERSECT/EXCEPT, or a parenthesised one of those."""
    while isinstance(tree, exp.Subquery):
        tree = tree.this
    return isinstance(tree, (exp.Select, exp.SetOperation))


def _forbidden_node(node: exp.Expr) -> str | None:
    """Why this node has no place in a job, or None if it may stay."""
    if isinstance(node, _WRITES):
        name = _statement_name(node) or type(node).__name__.upper()
        return f"{name} is not allowed, not even in a WITH clause"
    if isinstance(node, exp.Command):
        return f"{str(node.this).upper()} is not allowed"
    if isinstance(node, _STATEMENTS):
        return f"{_statement_name(node) or type(node).__name__.upper()} is not allowed"
    if isinstance(node, exp.Lock):
        return "SELECT ... FOR UPDATE/SHARE locks rows and is not allowed"
    if isinstance(node, exp.Into):
        return "SELECT ... INTO creates a table and is not allowed"
    if isinstance(node, exp.Anonymous) and node.name.lower() in FORBIDDEN_FUNCTIONS:
        return f"calling {node.name}() changes the session's configuration and is not allowed"
    return None


def _statement_name(node: exp.Expr) -> str | None:
    """The SQL keyword of a writing statement sqlglot names differently, or None."""
    names = {
        exp.Insert: "INSERT",
        exp.Update: "UPDATE",
        exp.Delete: "DELETE",
        exp.Merge: "MERGE",
        exp.Copy: "COPY",
        exp.Set: "SET",
        exp.TruncateTable: "TRUNCATE",
    }
    for kind, name in names.items():
        if isinstance(node, kind):
            return name
    return None


def _first_word(query: str) -> str:
    """The statement's first keyword, for messages about statements sqlglot cannot name."""
    match = re.search(r"[A-Za-z_]+", query)
    return match.group(0).upper() if match else "this statement"


def _claim_placeholders(tree: exp.Expr, occurrences: list[_Occurrence]) -> None:
    """Give our placeholders their names; refuse every other kind of bind parameter.

    sqlglot also reads ``$1``, ``:name``, ``%(name)s``, ``%s`` and ``?`` as
    parameters.  None of them is a job placeholder, and PostgreSQL would not
    know what to do with them at run time.  (sqlglot 30.30.0 also reads an
    array slice ``a[:hi]`` as ``a[:name]``; write ``a[1:hi]`` instead.)
    """
    for node in list(tree.find_all(exp.Placeholder, exp.Parameter)):
        mark = node.this if isinstance(node, exp.Placeholder) else None
        match = _MARK_RE.fullmatch(mark) if isinstance(mark, str) else None
        if match is None or int(match.group(2)) >= len(occurrences):
            raise errors.JobledgerError(
                "template_parse_error",
                "bind parameters such as $1, :name, %(name)s or ? are not supported "
                f"(found {node.sql(CHECK_DIALECT)})",
                hint="write a placeholder as {name}",
            )
        node.set("this", match.group(1))
        node.meta["jobledger_occurrence"] = int(match.group(2))


# --- where a placeholder may stand -------------------------------------------

# Parents under which a placeholder would be a name, not a value.
_NAME_PARENTS = (
    exp.Table,
    exp.TableAlias,
    exp.Column,
    exp.Identifier,
    exp.Dot,
    exp.Star,
    exp.DataType,
    exp.Var,
    exp.CTE,
    exp.With,
)

# (parent type, argument) pairs that are names or keywords, with the reason.
_NAME_ARGUMENTS = (
    (exp.Alias, "alias", "an alias is a name"),
    (exp.Join, "using", "JOIN ... USING takes column names"),
    (exp.Collate, "expression", "COLLATE takes a collation name"),
    (exp.Extract, "this", "EXTRACT takes a field keyword"),
    (exp.Kwarg, "this", "a named argument's name is a name"),
    (exp.Anonymous, "this", "a function name is a name"),
    (exp.Interval, None, "INTERVAL takes a string constant; write CAST({x} AS interval)"),
    (exp.Bracket, "this", "PostgreSQL can only subscript a parenthesised value; write ({x})[i]"),
)

_GROUPING = (exp.Group, exp.Rollup, exp.Cube, exp.GroupingSets)


def _check_positions(tree: exp.Expr, occurrences: list[_Occurrence]) -> None:
    """Refuse placeholders that would stand for a name or a whole ORDER/GROUP BY item."""
    for node in tree.find_all(exp.Placeholder):
        problem = _position_problem(node)
        if problem:
            where = occurrences[node.meta["jobledger_occurrence"]]
            raise errors.JobledgerError(
                "template_parse_error",
                f"placeholder {{{where.name}}} at line {where.line}, column {where.column} "
                f"cannot stand there: {problem.replace('{x}', '{' + where.name + '}')}",
                hint="a placeholder stands for one value, where a constant could be written",
            )


def _position_problem(node: exp.Placeholder) -> str | None:
    """Why a value cannot stand at this placeholder's position, or None."""
    parent, key = node.parent, node.arg_key
    if isinstance(parent, _NAME_PARENTS):
        return "it would be a name (table, column, alias, type or keyword), not a value"
    for kind, argument, reason in _NAME_ARGUMENTS:
        if isinstance(parent, kind) and argument in (None, key):
            return reason
    # PostgreSQL drops parentheses before deciding whether an ORDER BY, GROUP BY
    # or DISTINCT ON item is a constant, so (2) is "the second column" too.
    while isinstance(parent, exp.Paren):
        node, parent, key = parent, parent.parent, parent.arg_key
    if isinstance(parent, exp.Ordered) and key == "this":
        return (
            "a whole ORDER BY item that is a constant means a column position, "
            "or orders nothing"
        )
    if isinstance(parent, _GROUPING) or (
        isinstance(parent, exp.Tuple) and isinstance(parent.parent, _GROUPING)
    ):
        return "a whole GROUP BY item that is a constant means a column position"
    if isinstance(parent, exp.Tuple) and isinstance(parent.parent, exp.Distinct):
        return "a whole DISTINCT ON item that is a constant means a column position"
    return None


# --- strings whose meaning must not depend on standard_conforming_strings ----


def _normalise_strings(tree: exp.Expr) -> None:
    """Make every string constant in the tree one that reads the same under any setting.

    sqlglot writes ``exp.Literal`` strings as plain ``'...'`` with the text
    as is, and dollar-quoted strings (``exp.RawString``) too.  A plain string
    holding a backslash means something else when standard_conforming_strings
    is off, so such strings become ``exp.ByteString``, which sqlglot writes as
    an ``E'...'`` escape string with the backslash doubled: PostgreSQL always
    reads escape strings the same way.
    """
    for node in list(tree.find_all(exp.Literal, exp.RawString)):
        if isinstance(node, exp.RawString) or node.is_string:
            node.replace(string_node(node.this))


def string_node(text: str) -> exp.Expr:
    """A string constant that PostgreSQL reads as ``text`` whatever standard_conforming_strings.

    Without a backslash, a plain ``'...'`` string (quotes doubled) means the
    same under both settings.  With one, an ``E'...'`` escape string, in which
    sqlglot doubles backslashes, doubles quotes and writes control characters
    as escapes that PostgreSQL reads back (with ``JobledgerPostgres``).
    Dollar quoting would also do, but sqlglot writes dollar-quoted strings back
    as plain ones, and ``U&'...'`` is refused when the setting is off.
    """
    if "\\" in text:
        return exp.ByteString(this=text)
    return exp.Literal.string(text)


def plain_string_problem(sql: str, tokens: list[_Token] | None = None) -> str | None:
    """Describe the first plain string in ``sql`` whose meaning depends on the setting.

    ``tokens``: ``sql`` already tokenized (with either dialect: they differ
    only in how escape strings decode, not in token types or positions).
    """
    for token in DIALECT.tokenize(sql) if tokens is None else tokens:
        source = sql[token.start : token.end + 1]
        if token.token_type in _PLAIN_STRING_TOKENS and "\\" in source:
            return f"the string {source[:40]!r} contains a backslash"
        if token.token_type == _TokenType.UNICODE_STRING:
            return f"the string {source[:40]!r} uses U& escapes"
    return None


# --- canonical form and the round-trip guarantee -----------------------------


def to_sql(tree: exp.Expr) -> str:
    """Write a tree as SQL, without comments (PostgreSQL nests /* */ comments,
    sqlglot does not, so a comment written back could swallow SQL)."""
    return DIALECT.generate(tree, copy=True, comments=False)


def _canonicalise(tree: exp.Expr) -> tuple[str, exp.Expr]:
    """Write the template back and read it again; what reads back must write the same.

    sqlglot normalises as it writes (``date_trunc('day', x)`` becomes
    ``DATE_TRUNC('DAY', x)``, ``now()`` becomes ``CURRENT_TIMESTAMP``).
    Keeping the tree that reads back from its own SQL makes "rendered SQL
    reads back to the rendered tree" a property of the values alone.
    """
    canonical_sql = to_sql(tree)
    try:
        canonical, occurrences = _parse(canonical_sql)
        _claim_placeholders(canonical, occurrences)
    except errors.JobledgerError:
        canonical = None
    if canonical is None or to_sql(canonical) != canonical_sql:
        raise errors.JobledgerError(
            "template_parse_error",
            "the job query cannot be reproduced faithfully by the SQL parser "
            "(sqlglot reads its own output differently)",
        )
    problem = plain_string_problem(canonical_sql)
    if problem:
        raise errors.JobledgerError(
            "template_parse_error",
            f"the job query's meaning would depend on standard_conforming_strings: {problem}",
            hint="write such strings as E'...' escape strings outside JSON paths",
        )
    for node in canonical.find_all(exp.Placeholder):
        node.meta.pop("jobledger_occurrence", None)
    return canonical_sql, canonical


def round_trip_problem(tree: exp.Expr, sql: str) -> str | None:
    """Check SQL written from ``tree``: why it does not mean ``tree``, or None.

    The SQL must read back, with sqlglot's PostgreSQL dialect, as one
    statement equal to ``tree`` (literal text compared exactly) with no
    placeholder or bind parameter left, and must hold no plain string whose
    meaning depends on standard_conforming_strings.
    """
    try:
        tokens = _CHECK.tokenize(sql)
        statements = [s for s in _CHECK.parser().parse(tokens, sql) if s is not None]
    except (sqlglot.errors.SqlglotError, RecursionError) as error:
        return f"it does not parse: {error}"
    if len(statements) != 1:
        return f"it parses as {len(statements)} statements"
    back = statements[0]
    if back.find(exp.Placeholder, exp.Parameter) or tree.find(exp.Placeholder, exp.Parameter):
        return "a placeholder is left in it"
    if not same_tree(back, tree):
        return "it parses to a different tree"
    return plain_string_problem(sql, tokens)


def same_tree(left: object, right: object) -> bool:
    """Exact structural equality of two sqlglot trees.

    sqlglot's own ``==`` compares hashes that ignore the case of most text, so
    it cannot tell ``'a'`` from ``'A'`` in every node; this compares every
    argument, text exactly.  Absent, None, False and empty-list arguments count
    as the same, as they do for sqlglot.
    """
    pending = [(left, right)]
    while pending:
        a, b = pending.pop()
        if type(a) is not type(b):
            return False
        if isinstance(a, exp.Expr):
            keys = {k for k, v in a.args.items() if not _absent(v)}
            if keys != {k for k, v in b.args.items() if not _absent(v)}:
                return False
            pending.extend((a.args[k], b.args[k]) for k in keys)
        elif isinstance(a, list):
            if len(a) != len(b):
                return False
            pending.extend(zip(a, b))
        elif a != b:
            return False
    return True


def _absent(value: object) -> bool:
    return value is None or value is False or (isinstance(value, list) and not value)


def probe_literals() -> list[exp.Expr]:
    """One node of every shape ``render`` may put in place of a placeholder.

    ``parse_template`` proves each shape survives the round trip at every
    placeholder, so ``render`` only builds nodes of these shapes: an untyped
    string, number, negative number, boolean or NULL; a CAST of a string,
    number, negative number, boolean or NULL; a CAST of an ARRAY[...] of
    strings, numbers and booleans, or of an empty one.
    """
    bigint = exp.DataType.build("bigint")

    def scalars() -> list[exp.Expr]:
        return [
            exp.Literal.string("probe"),
            exp.ByteString(this="pro\\be"),
            exp.Literal.number(1),
            exp.Neg(this=exp.Literal.number(1)),
            exp.Boolean(this=True),
        ]

    casts: list[exp.Expr] = [
        exp.Cast(this=value, to=bigint.copy()) for value in [*scalars(), exp.Null()]
    ]
    arrays: list[exp.Expr] = [
        exp.Cast(this=exp.Array(expressions=scalars()), to=exp.DataType.build("text[]")),
        exp.Cast(this=exp.Array(expressions=[]), to=exp.DataType.build("text[]")),
    ]
    untyped = [
        exp.Literal.string("probe"),
        exp.ByteString(this="pro\\be"),
        exp.Literal.number(1),
        exp.Paren(this=exp.Neg(this=exp.Literal.number(1))),
        exp.Boolean(this=False),
        exp.Null(),
    ]
    return [*untyped, *casts, *arrays]


def substitute(tree: exp.Expr, value_for: dict[str, exp.Expr]) -> exp.Expr:
    """A copy of ``tree`` with each placeholder replaced by a copy of its value node."""
    copy = tree.copy()
    for node in list(copy.find_all(exp.Placeholder)):
        node.replace(value_for[node.this].copy())
    return copy


def _check_rendering(canonical: exp.Expr, occurrences: list[_Occurrence]) -> None:
    """Prove every literal shape survives the round trip at every placeholder."""
    names = {node.this for node in canonical.find_all(exp.Placeholder)}
    for probe in probe_literals() if names else [exp.Null()]:
        rendered = substitute(canonical, {name: probe for name in names})
        problem = round_trip_problem(rendered, to_sql(rendered))
        if problem is None:
            continue
        culprit = _culprit(canonical, names, probe)
        if culprit is None:
            raise errors.JobledgerError(
                "template_parse_error",
                f"the job query cannot be rendered faithfully: {problem}",
            )
        where = [o for o in occurrences if o.name == culprit]
        place = f" at line {where[0].line}, column {where[0].column}" if where else ""
        raise errors.JobledgerError(
            "template_parse_error",
            f"placeholder {{{culprit}}}{place} cannot stand there: the SQL parser reads "
            f"a value such as {to_sql(probe)} in that position as something else",
            hint=f"put it in parentheses, ({{{culprit}}}), or rewrite the expression around it",
        )


def _culprit(canonical: exp.Expr, names: set[str], probe: exp.Expr) -> str | None:
    """The placeholder name at which ``probe`` fails, other names holding NULL."""
    null = exp.Cast(this=exp.Null(), to=exp.DataType.build("text"))
    for name in sorted(names):
        values = {other: null for other in names}
        values[name] = probe
        rendered = substitute(canonical, values)
        if round_trip_problem(rendered, to_sql(rendered)) is not None:
            return name
    return None
