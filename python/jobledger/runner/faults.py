"""Fault injection for the tests: ``JOBLEDGER_RUNNER_FAULT=<point>`` in the
runner's environment makes it fail at that point, as a crash would.

* ``exit-after-publish``: exit at once after a parquet run published its
  version, before the ledger records it (runner.lake);
* ``executor-crash``: every executor thread dies as it starts (the runner
  restarts them, then gives up: process);
* ``executor-crash-once``: the first executor thread to start dies (the
  runner restarts it and goes on).

Unset (always, outside the tests), each check is one dictionary lookup.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("jobledger.runner")

VARIABLE = "JOBLEDGER_RUNNER_FAULT"

_once = threading.Lock()


def active(point: str) -> bool:
    return os.environ.get(VARIABLE) == point


def exit_now(point: str) -> None:
    """Exit the process at once (no cleanup), at ``point``."""
    if active(point):
        log.warning("%s=%s: exiting now", VARIABLE, point)
        logging.shutdown()
        os._exit(75)


def crash_executor() -> None:
    """Raise in an executor thread as it starts, if told to."""
    if active("executor-crash") or (active("executor-crash-once") and _once.acquire(blocking=False)):
        raise RuntimeError(f"{VARIABLE}: executor crash injected")
