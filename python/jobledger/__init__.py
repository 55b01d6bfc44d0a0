"""jobledger: parameterised SQL jobs with a run ledger in PostgreSQL.

This package is imported in two places: inside the server by the extension's
PL/Python functions (from the versioned directory ``make install`` fills), and
by clients such as the runner.  Modules imported on the server side must stay
light: no psycopg, no pyarrow.
"""

from __future__ import annotations

from jobledger._version import __version__

__all__ = ["__version__"]
