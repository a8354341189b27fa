"""The two-site drain benchmark (``make bench-sites``, part of ``make bench``) as CI runs it:
a tiny backlog at each site, so it proves the benchmark still runs to the end and its
exactly-once check passes, not how fast anything is (CI shares its cores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BACKLOG_PER_SITE = 200


@pytest.mark.timeout(900)
def test_two_sites_drain_at_once_and_every_transaction_is_on_main_exactly_once(
    tmp_path: Path,
) -> None:
    out = tmp_path / "sites.json"
    env = {
        **os.environ,
        "BENCH_SITES_BACKLOG": str(BACKLOG_PER_SITE),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p
        ),
    }
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--phases", "drain_sites", "--out", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    phase = json.loads(out.read_text())["phases"]["drain_sites"]
    assert phase["exactly_once"]["passed"], phase["exactly_once"]
    for name, site in phase["sites"].items():
        check = site["exactly_once"]
        assert check["accepted"] == BACKLOG_PER_SITE, (name, site["fill"])
        assert check["applied_of_site"] == check["rows_on_main"] == BACKLOG_PER_SITE, check
        assert site["visibility"]["visible"] == BACKLOG_PER_SITE, (name, site["visibility"])
    assert "exactly once: PASS" in run.stdout
