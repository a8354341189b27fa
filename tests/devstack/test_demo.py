"""The README's run command, as CI sees it: the whole two-site stack comes up, the demo
plays through an outage, and everything is stopped and removed afterwards."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_stack_up_plays_the_demo_and_cleans_up(tmp_path: Path) -> None:
    state_file = tmp_path / "stack.json"
    result = subprocess.run(
        [sys.executable, "-m", "ccat_api", "stack", "up", "--exit-after-demo"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "CCAT_STACK_STATE": str(state_file)},
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "OUTAGE" in out
    assert re.search(r"observatory\s+PUT /executed_obs_units/\{id\}/finish -> 200 buffered", out)
    assert re.search(r"main\s+GET that observation at main -> 404", out)
    assert re.search(
        r"main\s+last observation: 100 files; first: 'success', package 'archived'", out
    )
    assert "0 dead letters" in out
    # Metrics move with the demo: writes accepted during the outage, then applied.
    scrapes = [
        tuple(int(n) for n in m)
        for m in re.findall(
            r"/metrics: (\d+) accepted, (\d+) applied, (\d+) visible, buffer depth (\d+)", out
        )
    ]
    assert len(scrapes) == 3, out
    before, outage, after = scrapes
    assert before[0] == before[1] == before[2] > 0
    assert outage[0] > before[0]
    assert outage[1] == before[1]
    assert outage[3] == outage[0] - outage[1] > 0
    assert after[0] == after[1] == after[2] == outage[0]
    assert after[3] == 0
    base_dir = re.search(r'"base_dir": "([^"]+)"', out)
    assert base_dir is not None
    assert not Path(base_dir.group(1)).exists()
    assert not state_file.exists()
