"""Crash points for tests: ``CCAT_FAILPOINTS=after_commit`` makes the process die right there,
like SIGKILL (no cleanup, no finally blocks), so tests can kill a processor at the one
moment that matters instead of hoping a signal lands there."""

from __future__ import annotations

import os
import sys

_ARMED = frozenset(filter(None, os.environ.get("CCAT_FAILPOINTS", "").split(",")))
CRASH_EXIT_CODE = 86


def failpoint(name: str) -> None:
    if name in _ARMED:
        sys.stderr.write(f"failpoint {name}: exiting\n")
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)
