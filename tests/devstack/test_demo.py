"""The README's run command, as CI sees it: the whole two-site stack comes up, the demo
plays through an outage, the stack keeps serving (its processor's metrics included) until
`ccat-api stack down`, and everything is stopped and removed afterwards."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

DEMO_TIMEOUT_S = 300


def ccat_api(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccat_api", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def sample(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert found, f"{name} missing"
    return float(found.group(1))


def test_stack_up_plays_the_demo_serves_until_stack_down_and_cleans_up(tmp_path: Path) -> None:
    state_file = tmp_path / "stack.json"
    env = {**os.environ, "CCAT_STACK_STATE": str(state_file), "PYTHONUNBUFFERED": "1"}
    stack = subprocess.Popen(
        [sys.executable, "-m", "ccat_api", "stack", "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    stdout = stack.stdout
    assert stdout is not None
    lines: list[str] = []
    demo_done = threading.Event()

    def read() -> None:
        for line in stdout:
            lines.append(line)
            if line.startswith("stack running"):
                demo_done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert demo_done.wait(DEMO_TIMEOUT_S), "".join(lines)
        status = ccat_api("stack", "status", "--json", env=env)
        assert status.returncode == 0, status.stderr
        described = json.loads(status.stdout)
        # The processor's own histograms moved with the demo's replays.
        scraped = httpx.get(described["processor_metrics"], timeout=10).text
        batches = sample(scraped, "ccat_replay_batch_transactions_count")
        assert batches >= 2  # before the outage, and the backlog after it
        assert sample(scraped, "ccat_replay_batch_duration_seconds_count") == batches
        replayed = sample(scraped, "ccat_replay_batch_transactions_sum")
        assert sample(scraped, "ccat_replay_batch_duration_seconds_sum") > 0
        assert "process_cpu_seconds_total" in scraped
        down = ccat_api("stack", "down", env=env)
        assert down.returncode == 0, down.stdout + down.stderr
        assert stack.wait(timeout=120) == 0
    finally:
        if stack.poll() is None:
            # SIGTERM lets it stop and remove everything it started.
            stack.send_signal(signal.SIGTERM)
            try:
                stack.wait(timeout=120)
            except subprocess.TimeoutExpired:
                stack.kill()
                stack.wait()
        reader.join(timeout=10)
        stdout.close()
    out = "".join(lines)
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
    # Every applied transaction went to main in one of the processor's batches.
    assert replayed >= after[1]
    assert "stack stopped and removed" in out
    base_dir = re.search(r'"base_dir": "([^"]+)"', out)
    assert base_dir is not None
    assert not Path(base_dir.group(1)).exists()
    assert not state_file.exists()


def test_stack_up_with_two_sites_serves_both_and_cuts_one_link(tmp_path: Path) -> None:
    """`ccat-api stack up --sites a,b` as an operator runs it: both sites' gateways answer,
    `stack status` lists both, and `wan set --site` cuts one link and names unknown sites."""
    env = {**os.environ, "CCAT_STACK_STATE": str(tmp_path / "stack.json"), "PYTHONUNBUFFERED": "1"}
    stack = subprocess.Popen(
        [sys.executable, "-m", "ccat_api", "stack", "up", "--no-demo",
         "--sites", "observatory,cornell"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    stdout = stack.stdout
    assert stdout is not None
    lines: list[str] = []
    running = threading.Event()

    def read() -> None:
        for line in stdout:
            lines.append(line)
            if line.startswith("stack running"):
                running.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert running.wait(DEMO_TIMEOUT_S), "".join(lines)
        status = ccat_api("stack", "status", "--json", env=env)
        assert status.returncode == 0, status.stderr
        described = json.loads(status.stdout)
        assert set(described["sites"]) == {"observatory", "cornell"}
        assert described["sites"]["observatory"]["redis"] != described["sites"]["cornell"]["redis"]
        for site in ("observatory", "cornell"):
            health = httpx.get(f"{described['gateways'][site]}/health", timeout=10).json()
            assert health["site"] == site, health

        cut = ccat_api("wan", "set", "--site", "cornell", "--down", env=env)
        assert cut.returncode == 0, cut.stderr
        assert json.loads(cut.stdout)["down"] is True
        other = ccat_api("wan", "set", "--site", "observatory", env=env)
        assert json.loads(other.stdout)["down"] is False
        unknown = ccat_api("wan", "set", "--site", "nowhere", "--down", env=env)
        assert unknown.returncode == 1
        assert "no site 'nowhere'" in unknown.stderr

        down = ccat_api("stack", "down", env=env)
        assert down.returncode == 0, down.stdout + down.stderr
        assert stack.wait(timeout=120) == 0
    finally:
        if stack.poll() is None:
            stack.send_signal(signal.SIGTERM)
            try:
                stack.wait(timeout=120)
            except subprocess.TimeoutExpired:
                stack.kill()
                stack.wait()
        reader.join(timeout=10)
        stdout.close()
