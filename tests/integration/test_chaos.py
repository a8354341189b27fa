"""The seeded fault campaign's short run (``make chaos`` runs the long one): clients write
the observation life cycle through two gateway processes while every fault kind the stack
offers strikes once (Redis primary kill -9 and Sentinel failover, processor and gateway
kill -9, WAN outage and high delay, replica replay paused, main's promotion where the stack
has a standby); nothing acknowledged may be lost, nothing applied twice or out of order, no
read at the site may miss its write. Then the run damages main on purpose and the checker
must say so. The seed is CCAT_CHAOS_SEED or a fresh one; a failure prints it and the command
that replays it. The campaign runs a stack of its own (a Sentinel set, processes)."""

from __future__ import annotations

import os
import random

import pytest

from ccat_api.devstack.chaos.campaign import CampaignConfig, run_campaign
from ccat_api.devstack.chaos.faults import SITE_FAULTS

SEED = int(os.environ.get("CCAT_CHAOS_SEED") or random.SystemRandom().randrange(10**9))
WRITES = 300
FAULTS = len(SITE_FAULTS) + 1  # each kind once; main's promotion too where the stack has it


@pytest.fixture(autouse=True)
def healthy_wan() -> None:
    """This test starts its own stack: not the session's (conftest's fixture would)."""


@pytest.mark.timeout(900)
def test_a_seeded_fault_campaign_loses_nothing_and_applies_nothing_twice() -> None:
    print(f"chaos seed {SEED}")
    config = CampaignConfig(
        seed=SEED,
        writes=WRITES,
        faults=FAULTS,
        clients=4,
        mean_gap_s=7.0,
        drain_timeout_s=180.0,
        sabotage=True,
    )
    result = run_campaign(config, progress=None)
    summary = result.summary()
    print(summary)
    replay = f"CCAT_CHAOS_SEED={SEED} pytest {__file__}, or {result.replay_command()}"
    assert result.report.ok, f"chaos seed {SEED} failed; replay: {replay}\n{summary}"
    injected = {fault.kind for fault in result.history.faults}
    assert set(SITE_FAULTS) <= injected, summary
    assert not [f for f in result.history.faults if f.note.startswith("FAILED")], summary
    assert result.report.acknowledged >= WRITES * 0.9, summary
    # The same checker, on main damaged after the drain, must fail on each kind of damage.
    damaged = result.sabotaged
    assert damaged is not None
    assert (damaged.lost, damaged.duplicated > 0, damaged.order > 0) == (1, True, True), summary
