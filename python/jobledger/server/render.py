"""Render a job's SQL: the template exactly as its author wrote it, with one
literal spliced into each placeholder's place.

Nothing outside the placeholders changes: not case, not whitespace, not
comments, not function spellings.  A template records where its
placeholders are (``Span``: character offsets, worked out and checked by
``template.parse_template`` when the job was defined).

Every rendered query is read back with PostgreSQL's own grammar
(``pgparse``) and must be the template's tree with, in each placeholder's
place, exactly the tree of its literal read alone (``Renderer.check``).
Each literal was already checked on its own (``literals.literal``).  So a
value can only ever be one constant, whatever its text holds.

Imported on ``submit_job``'s path: no sqlglot.
"""

from __future__ import annotations

import collections
import collections.abc
TYPE_CHECKING = False  # typing is slow to import: submit_job's first call pays for every import
if TYPE_CHECKING:
    from typing import Any

from jobledger.core import named_sql
from jobledger.server import pgparse, queries


class Span(collections.namedtuple("Span", "start end name")):
    """One placeholder occurrence: ``query[start:end]`` is ``{name}``."""

    __slots__ = ()


def splice(query: str, spans: collections.abc.Sequence[Span], texts: collections.abc.Mapping[str, str]) -> str:
    """``query`` with each span replaced by the text for its name."""
    return splice_each(query, spans, [texts[span.name] for span in spans])


def parameter_text(query: str, spans: collections.abc.Sequence[Span]) -> str:
    """``query`` with the n-th placeholder occurrence written ``$n``: what
    PostgreSQL's grammar reads as a value wherever a value may stand."""
    return splice_each(query, spans, [f"${index + 1}" for index in range(len(spans))])


def splice_each(query: str, spans: collections.abc.Sequence[Span], texts: collections.abc.Sequence[str]) -> str:
    """``query`` with the i-th span replaced by ``texts[i]``."""
    parts = []
    position = 0
    for span, text in zip(spans, texts):
        parts.append(query[position : span.start])
        parts.append(text)
        position = span.end
    parts.append(query[position:])
    return "".join(parts)


def statement_tree(sql: str) -> Any:
    """The one statement of ``sql`` without locations (pgparse.ParseError if
    PostgreSQL rejects it, ValueError if it holds more or less than one)."""
    return pgparse.strip_locations(_statement(sql))


def _statement(sql: str) -> Any:
    """The one statement of ``sql``, locations kept (see ``statement_tree``)."""
    statements = pgparse.parse(sql)
    if len(statements) != 1:
        raise ValueError(f"{len(statements)} statements")
    return statements[0]["stmt"]


def literal_tree(text: str) -> Any:
    """The tree of one literal read alone, as the value of ``SELECT <literal>``."""
    found = _literal_trees.get(text)
    if found is None:
        stmt = statement_tree(named_sql.fill(queries.get("literal_probe"), literal=text))
        found = stmt["SelectStmt"]["targetList"][0]["ResTarget"]["val"]
        if len(_literal_trees) >= 4096:
            _literal_trees.clear()
        _literal_trees[text] = found
    return found


_literal_trees: dict[str, Any] = {}


class Renderer:
    """Renders one template version; built once per session and version.

    ``end``: where the statement ends in the stored text, before a
    terminating ``;`` (the runner puts the query inside ``INSERT ... ( )``,
    where a ``;`` cannot stand); the text after it is comments at most.
    """

    def __init__(self, query: str, spans: collections.abc.Sequence[Span], end: int | None = None) -> None:
        self.query = query if end is None else query[:end]
        self.spans = tuple(spans)
        self.names = frozenset(span.name for span in self.spans)
        self._tree: Any = None
        # Rendered texts this session already checked: jobs are often
        # submitted with the same values, and the same text reads the same.
        self._checked: dict[str, None] = {}

    def render(self, texts: collections.abc.Mapping[str, str]) -> str:
        """The query with each placeholder's literal text, checked with PostgreSQL's grammar."""
        missing = sorted(self.names - set(texts))
        if missing:
            raise RuntimeError(f"no value for placeholders: {', '.join(missing)}")
        sql = self.splice(texts)
        problem = self.check(sql, texts)
        if problem is not None:
            raise RuntimeError(f"rendered job SQL failed its check: {problem}")
        return sql

    def splice(self, texts: collections.abc.Mapping[str, str]) -> str:
        """The statement with each placeholder's text, unchecked."""
        return splice(self.query, self.spans, texts)

    def check(self, sql: str, texts: collections.abc.Mapping[str, str]) -> str | None:
        """Why ``sql`` is not the template's tree with each literal's tree in
        its placeholder's place, or None."""
        if sql in self._checked:
            return None
        if self._tree is None:
            self._tree = statement_tree(parameter_text(self.query, self.spans))
        try:
            rendered = _statement(sql)
        except (pgparse.ParseError, ValueError) as error:
            return f"PostgreSQL does not read it as one statement: {error}"
        values = [literal_tree(texts[span.name]) for span in self.spans]
        if not same_with_values(self._tree, rendered, values):
            return "PostgreSQL reads it as a different tree than the template's"
        if len(sql) <= _KEPT_LENGTH:
            if len(self._checked) >= _KEPT:
                self._checked.clear()
            self._checked[sql] = None
        return None


# Rendered texts kept as checked, per Renderer, and the longest kept.
_KEPT = 512
_KEPT_LENGTH = 8192


def same_with_values(template: Any, rendered: Any, values: collections.abc.Sequence[Any]) -> bool:
    """Whether ``rendered`` equals ``template`` with each ``ParamRef`` $n
    replaced by ``values[n - 1]``, ``location`` keys ignored wherever they are."""
    pending = [(template, rendered)]
    while pending:
        left, right = pending.pop()
        if isinstance(left, dict):
            if len(left) == 1 and "ParamRef" in left:
                number = left["ParamRef"].get("number", 0)
                if not 1 <= number <= len(values):
                    return False
                pending.append((values[number - 1], right))
                continue
            if not isinstance(right, dict):
                return False
            keys = 0
            for key, value in left.items():
                if key == "location":
                    continue
                if key not in right:
                    return False
                keys += 1
                pending.append((value, right[key]))
            if keys != len(right) - ("location" in right):
                return False
        elif isinstance(left, list):
            if not isinstance(right, list) or len(left) != len(right):
                return False
            pending.extend(zip(left, right))
        elif left != right:
            return False
    return True
