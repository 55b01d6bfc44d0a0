"""The search_path job queries run with.

Job queries resolve unqualified names in public, after the catalogs, at
define time (``jobledger.server.preflight``) and in the runner alike;
temporary objects last, so that no temporary table or view can stand in for
a permanent one.
"""

from __future__ import annotations

TEMPLATE_SEARCH_PATH = "pg_catalog, public, pg_temp"
