"""jobledger: parameterised SQL jobs with a run ledger in PostgreSQL.

This package is imported in two places: inside the server by the extension's
PL/Python functions (from the versioned directory ``make install`` fills), and
by clients such as the runner.  Its packages are split by where they run:

* ``server``: everything PL/Python imports (pure Python, sqlglot, pglast);
* ``core``: what both sides share (pure Python);
* ``runner``, ``cli``, ``lake`` and ``client``: the client side (the ``client``
  extra: psycopg, pyarrow, click ...).

Nothing the server imports may import psycopg or pyarrow
(tests/unit/test_import_graph.py).
"""

from __future__ import annotations

from jobledger._version import __version__

__all__ = ["__version__"]
