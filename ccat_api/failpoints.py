"""Fail points for tests: named places where a test makes the process fail on purpose, at the
one moment that matters, instead of hoping a signal or a fault lands there.

``CCAT_FAILPOINTS=name[=action],...`` arms them when the process starts; ``arm()`` does it in
a test's own process. Actions:

- ``crash`` (the default): exit right there like SIGKILL (no cleanup, no finally blocks);
- ``raise``: raise ``FailpointError``, an exception no code path expects, every time;
- ``raise*N``: the same, the first N times only, after which the point is inert.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

CRASH_EXIT_CODE = 86


class FailpointError(RuntimeError):
    """Raised by an armed ``raise`` fail point: stands for a bug nobody anticipated."""


@dataclass
class _Armed:
    action: str  # "crash" or "raise"
    remaining: int | None  # raise*N: how many raises are left; None: no limit


_armed: dict[str, _Armed] = {}


def arm(name: str, action: str = "crash") -> None:
    """Arm ``name`` with ``action`` (``crash``, ``raise`` or ``raise*N``)."""
    kind, star, times = action.partition("*")
    if not (action in ("crash", "raise") or (kind == "raise" and star and times.isdigit())):
        raise ValueError(f"fail point {name}: unknown action {action!r}")
    _armed[name] = _Armed(kind, int(times) if times else None)


def disarm(name: str) -> None:
    _armed.pop(name, None)


def failpoint(name: str) -> None:
    armed = _armed.get(name)
    if armed is None:
        return
    if armed.action == "crash":
        sys.stderr.write(f"failpoint {name}: exiting\n")
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)
    if armed.remaining is not None:
        armed.remaining -= 1
        if armed.remaining <= 0:
            disarm(name)
    raise FailpointError(f"failpoint {name}")


for _spec in filter(None, os.environ.get("CCAT_FAILPOINTS", "").split(",")):
    _name, _, _action = _spec.partition("=")
    arm(_name, _action or "crash")
