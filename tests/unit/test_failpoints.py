from __future__ import annotations

import pytest

from ccat_api import failpoints
from ccat_api.failpoints import FailpointError, arm, disarm, failpoint


def test_an_unarmed_failpoint_does_nothing() -> None:
    failpoint("nowhere")


def test_raise_n_raises_that_many_times_then_goes_inert() -> None:
    arm("twice", "raise*2")
    for _ in range(2):
        with pytest.raises(FailpointError, match="twice"):
            failpoint("twice")
    failpoint("twice")


def test_raise_raises_until_disarmed() -> None:
    arm("always", "raise")
    try:
        for _ in range(3):
            with pytest.raises(FailpointError):
                failpoint("always")
    finally:
        disarm("always")
    failpoint("always")


@pytest.mark.parametrize("action", ["explode", "crash*2", "raise*x", "raise*"])
def test_an_unknown_action_is_refused(action: str) -> None:
    with pytest.raises(ValueError, match="unknown action"):
        arm("bad", action)
    assert "bad" not in failpoints._armed
