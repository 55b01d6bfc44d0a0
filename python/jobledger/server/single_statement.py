"""Hand text the server must parse to it as exactly one statement.

``plpy.execute(text)`` and ``plpy.prepare(text)`` accept several statements
separated by semicolons and run them all, so they must never see text built
from a template.  ``prepare_one`` is the only way such text reaches the
server from PL/Python here:

1. PostgreSQL's grammar (``pgparse``, the server's own parser) must read the
   exact text as one statement of the expected kind;
2. the server prepares it, and PostgreSQL itself is asked whether the plan
   holds one statement: opening a plan as a cursor fails at once with
   "cannot open multi-query plan as cursor" when it holds several, before
   anything runs (and with "cannot open <command> query as cursor" for a
   single utility statement).  Only a plan that passed both is returned.

Callers set ``standard_conforming_strings = on`` around the call: it is how
libpg_query lexes, so both readings are the same.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is slow to import: submit_job's first call pays for every import
if TYPE_CHECKING:
    from typing import Any

from jobledger.server import pgparse


class NotOneStatement(Exception):
    """The text is not exactly one statement of the expected kind."""


def prepare_one(plpy: Any, text: str, kind: str) -> Any:
    """A prepared plan of ``text``, which must be one ``kind`` statement
    (a node name such as ``ViewStmt``)."""
    try:
        statements = pgparse.parse(text)
    except pgparse.ParseError as error:
        raise NotOneStatement(error.message) from None
    if len(statements) != 1 or kind not in statements[0]["stmt"]:
        raise NotOneStatement(f"PostgreSQL's grammar reads {len(statements)} statements, not one {kind}")
    plan = plpy.prepare(text)
    try:
        with plpy.subtransaction():
            cursor = plpy.cursor(plan)
            cursor.close()
    except plpy.SPIError as error:
        if "multi-query" in str(error):
            raise NotOneStatement("PostgreSQL prepared several statements") from None
    return plan
