"""The Prometheus files an operator deploys, checked by ``promtool`` (Debian's ``prometheus``
package; ``make test-deps`` installs it): the configuration loads with its rule file, the
rules are valid, and ``alerts_test.yml`` shows each alert firing and not firing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

# PyYAML comes with astropy (a dependency); its stubs would be one more package for a test.
import yaml  # type: ignore[import-untyped]
from prometheus_client import generate_latest

from ccat_api.live.metrics import render
from ccat_api.live.models import BufferStatus, RedisStatus, ReplicaStatus, SiteStatus
from ccat_api.metrics import REPLAY_REGISTRY

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
TOKEN_FILE = "/etc/prometheus/ccat-api.token"


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> None:
    # Not a skip: CI without promtool would pass while testing no rule at all.
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: `make test-deps` installs Debian's prometheus"
    done = subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def test_prometheus_yml_loads_with_its_alert_rules(tmp_path: Path) -> None:
    # promtool opens the scrape token's file; only its path differs from the deployed file.
    config = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    assert TOKEN_FILE in config
    (tmp_path / "ccat-api.token").write_text("ccat_test_token\n")
    (tmp_path / "prometheus.yml").write_text(
        config.replace(TOKEN_FILE, str(tmp_path / "ccat-api.token"))
    )
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", tmp_path / "alerts.yml")
    assert yaml.safe_load(config)["rule_files"] == ["alerts.yml"]
    promtool("check", "config", "prometheus.yml", cwd=tmp_path)


def test_alert_rules_are_valid() -> None:
    promtool("check", "rules", "alerts.yml")


def test_alert_rules_fire_and_stay_quiet_as_alerts_test_yml_expects() -> None:
    promtool("test", "rules", "alerts_test.yml")


def test_every_alert_has_a_severity_a_runbook_and_a_test_each_way() -> None:
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert {"summary", "description", "runbook_url"} <= rule["annotations"].keys(), name
        assert rule["annotations"]["runbook_url"].startswith("docs/runbooks/"), name
        outcomes = [bool(case["exp_alerts"]) for case in cases if case["alertname"] == name]
        assert True in outcomes, f"{name}: no test where it fires"
        assert False in outcomes, f"{name}: no test where it stays quiet"


def test_every_metric_alerted_on_is_one_the_gateway_or_processor_exports() -> None:
    """A misspelt metric is no error to Prometheus: the alert just never fires."""
    # Every optional figure present: a Redis with maxmemory, a replica that answers.
    status = SiteStatus(
        site="obs", site_type="secondary", sampled_at=0.0, main={"ok": True},
        replica=ReplicaStatus(ok=True, receive_lag_bytes=0, apply_lag_bytes=0, apply_lag_s=0.0,
                              wan_delay_s=0.1),
        buffer=BufferStatus(depth=1, oldest_pending_age_s=1.0, awaiting_replica=0,
                            dead_letters=0, accept_rate_tx_s=1.0, drain_rate_tx_s=1.0,
                            estimated_drain_s=1.0, memory_used_bytes=1 << 20,
                            memory_max_bytes=1 << 30, memory_used_fraction=1 / 1024),
        processor={"state": "idle"}, counters={}, redis=RedisStatus(ok=True),
    )  # fmt: skip
    exposition = render(status)[0] + generate_latest(REPLAY_REGISTRY)
    # HELP lines name every family, also a labelled counter nothing has incremented yet.
    exported = set(re.findall(r"^# HELP (\w+)", exposition.decode(), re.M)) | {"up"}
    for rule in rules():
        used = set(re.findall(r"\b(ccat_\w+|up)\b", rule["expr"]))
        assert used, rule["alert"]
        assert used <= exported, f"{rule['alert']}: {sorted(used - exported)} not exported"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_alert_links_to_a_runbook_section_that_exists() -> None:
    """An alert at 3 a.m. must lead somewhere: each runbook_url names a file in the repository
    and a heading in it."""
    repository = PROMETHEUS_DIR.parents[1]
    broken = []
    for rule in rules():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        page = repository / path
        headings = (
            {_anchor(line.lstrip("#")) for line in page.read_text().splitlines()
             if line.startswith("#")}
            if page.is_file()
            else set()
        )  # fmt: skip
        if not page.is_file() or (anchor and anchor not in headings):
            broken.append(f"{rule['alert']}: {url}")
    assert broken == []
