"""glibc malloc settings for the runner process, applied once at its start.

pylance (Lance's Rust writer) allocates with the C library's malloc from
about a dozen threads.  With glibc's defaults a runner writing ``lance:``
datasets grew with the rows it wrote (docs/benchmarks.md, "Lake writes",
Lance): freed buffers stay in per-thread arenas (up to 8 per core), and
glibc raises its mmap threshold after every large free, so later buffers of
that size come from those arenas too.  Sampled every 0.5 s, a 10M-row run's
RSS stayed flat at about 220-229 MiB with one arena (1M rows: 221 MiB), and
climbed to 250-277 MiB with the defaults.

So, unless the environment sets them (``MALLOC_ARENA_MAX``,
``MALLOC_MMAP_THRESHOLD_``: the operator's own choice wins), the runner
keeps one arena and glibc's initial mmap threshold (128 KiB) fixed.  These
are ``mallopt`` calls made before any executor thread exists; the runner's
Python threads allocate under the GIL anyway, delta-rs brings jemalloc and
pyarrow's buffers come from mimalloc.  Nothing is done on a C library other
than glibc.
"""

from __future__ import annotations

import collections.abc
import ctypes
import logging
import os
import platform

log = logging.getLogger("jobledger.runner")

# mallopt's parameter numbers (malloc.h) and the values the runner keeps.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
SETTINGS = (("MALLOC_ARENA_MAX", M_ARENA_MAX, 1), ("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, 128 * 1024))


def configure(environ: collections.abc.Mapping[str, str] | None = None) -> dict[str, int]:
    """Apply SETTINGS not given in the environment; the ones applied, by name."""
    environ = os.environ if environ is None else environ
    if platform.libc_ver()[0] != "glibc":
        return {}
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return {}
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = {}
    for variable, parameter, value in SETTINGS:
        if variable in environ:
            continue
        if mallopt(parameter, value) == 1:
            applied[variable] = value
        else:
            log.warning("could not set malloc's %s to %d", variable, value)
    return applied
