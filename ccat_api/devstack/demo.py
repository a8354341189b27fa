"""The scripted demo played by ``ccat-api stack up``: an instrument at the observatory keeps
writing through a WAN outage, and the backlog drains and becomes visible when it heals.

It talks to the gateways over real HTTP, the instrument through the SDK (``ccat_api.client``)
like instrument software does, and prints a timeline.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any, ParamSpec

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ccat_api.client import Client, WriteResult
from ccat_api.db.models import Role
from ccat_api.devstack.stack import MAIN_SITE, Stack
from ccat_api.devstack.tokens import issue_tokens

FILE = {"size_bytes": 52_428_800, "file_type": "fits", "instrument_module_id": 2}
DRAIN_TIMEOUT_S = 120
# The gateway samples the site's figures at most twice a second.
METRICS_FRESH_S = 0.6
P = ParamSpec("P")


class Timeline:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, where: str, what: str) -> None:
        print(f"[{time.monotonic() - self.started:7.2f}s] {where:<12} {what}", flush=True)


class HttpClient:
    """Plain HTTP for the main site's planner and dashboard."""

    def __init__(self, base_url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def read(self, path: str, **params: Any) -> Any:
        return self.http.get(path, params=params).json()


class Instrument:
    """The instrument software at the observatory: writes through the SDK (Idempotency-Keys,
    retries), each reported on the timeline with its latency."""

    def __init__(self, where: str, base_url: str, token: str, timeline: Timeline) -> None:
        self.where = where
        self.sdk = Client(base_url, token)
        self.timeline = timeline
        self.latencies_ms: list[float] = []

    def write(
        self,
        method: str,
        label: str,
        send: Callable[P, WriteResult],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> WriteResult:
        """``send(*args, **kwargs)``, timed; on the timeline when it has a ``label``."""
        started = time.perf_counter()
        answer = send(*args, **kwargs)
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.latencies_ms.append(elapsed_ms)
        if label:
            self.timeline.say(
                self.where,
                f"{method} {label} -> {answer.http_status} {answer.status} in {elapsed_ms:.1f} ms",
            )
        return answer


def _say_metrics(t: Timeline, site: str, sdk: Client) -> dict[str, float]:
    """The site's Prometheus figures, as a monitoring system scrapes them."""
    scraped = sdk.http.get("/metrics")
    scraped.raise_for_status()
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
        if sample.labels.get("site") == site
    }
    t.say(
        site,
        f"/metrics: {values['ccat_transactions_accepted_total']:.0f} accepted,"
        f" {values['ccat_transactions_applied_total']:.0f} applied,"
        f" {values['ccat_transactions_visible_total']:.0f} visible,"
        f" buffer depth {values['ccat_buffer_depth']:.0f}",
    )
    return values


def _tokens(stack: Stack) -> dict[Role, str]:
    roles = (Role.OPERATOR, Role.VIEWER, Role.ADMIN)
    issued = asyncio.run(
        issue_tokens(stack, {f"demo-{r.value}": r.value for r in roles}, application_name="demo")
    )
    return {r: issued[f"demo-{r.value}"] for r in roles}


def _wait(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False


def _files(eou_id: str, prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            **FILE,
            "name": f"{prefix}_{i:03d}.fits",
            "relative_path": f"{eou_id}/{prefix}_{i:03d}.fits",
            "checksum": "sha256:" + hashlib.sha256(f"{eou_id}/{prefix}/{i}".encode()).hexdigest(),
            "executed_obs_unit_id": eou_id,
        }
        for i in range(count)
    ]


def run_demo(stack: Stack) -> None:
    site = stack.config.secondary_site
    t = Timeline()
    tokens = _tokens(stack)
    stack.wait_replica_caught_up()
    t.say("setup", "tokens issued on main: instrument (operator), dashboard (viewer)")
    instrument = Instrument(site, stack.gateway_url(site), tokens[Role.OPERATOR], t)
    sdk = instrument.sdk
    dashboard = HttpClient(stack.gateway_url(MAIN_SITE), tokens[Role.VIEWER])
    planner = HttpClient(stack.gateway_url(MAIN_SITE), tokens[Role.OPERATOR])

    _wait(lambda: sdk.health().ok, 30)
    t.say(site, f"healthy; WAN round trip {2 * stack.config.wan_delay_ms} ms")

    # Planning happens at main: a program and an obs unit on a seeded source.
    stamp = int(time.time())
    program = planner.http.post(
        "/observing_programs",
        json={"short_name": f"demo-{stamp}", "name": "Demo program", "pi_name": "Demo PI"},
    ).json()
    orion = planner.read("/sources", q="Orion KL")["items"][0]
    unit = planner.http.post(
        "/obs_units",
        json={"name": f"demo-orion-{stamp}", "observing_program_id": program["id"],
              "instrument_id": 1, "source_id": orion["id"]},
    ).json()  # fmt: skip
    sky = planner.read(f"/sources/{orion['id']}/visibility", date=time.strftime("%Y-%m-%d"))
    t.say(
        "main",
        f"program {program['short_name']!r}, obs unit {unit['name']!r} on Orion KL"
        f" (highest today {sky['max_altitude_deg']:.0f} deg at {sky['time_of_max'][11:16]} UTC)",
    )
    stack.wait_replica_caught_up()

    eou = instrument.write(
        "POST", "/executed_obs_units/start",
        sdk.start_executed_obs_unit, {"obs_unit_id": unit["id"], "instrument_module_id": 2},
    )  # fmt: skip
    files = instrument.write(
        "POST", "/raw_data_files/bulk (50 files)",
        sdk.register_files, _files(str(eou.id), "scan", 50),
    )  # fmt: skip
    package = instrument.write(
        "POST",
        "/raw_data_package",
        sdk.create_package,
        {
            "name": f"pkg-{eou.id}",
            "executed_obs_unit_id": eou.id,
            "instrument_module_id": 2,
            "raw_data_file_ids": files.ids,
        },
    )
    started = time.monotonic()
    sdk.wait_visible(package, timeout_s=30, poll_interval_s=0.05)
    t.say(
        site,
        f"applied on main, visible on the local replica {time.monotonic() - started:.2f}s later",
    )
    seen = dashboard.read(f"/raw_data_package/{package.id}")
    t.say("main", f"GET /raw_data_package -> {seen['status']}, {seen['file_count']} files")
    time.sleep(METRICS_FRESH_S)
    _say_metrics(t, site, sdk)

    stack.wan.down()
    t.say("wan", "OUTAGE: the link to main is down (packets held, nothing gets through)")
    instrument.write(
        "PUT", "/raw_data_package/{id}/finalize",
        sdk.finalize_package, package.id, checksum="md5:0123456789abcdef",
    )  # fmt: skip
    instrument.write(
        "PUT", "/executed_obs_units/{id}/finish",
        sdk.finish_executed_obs_unit, eou.id, {"status": "success", "mean_pwv_mm": 0.6},
    )  # fmt: skip
    # The transfer service ships the finalized package to the Cologne archive (route 1).
    transfer = instrument.write(
        "POST", "/api/transfer/transfers (to the Cologne archive)",
        sdk.start_transfer, {"raw_data_package_id": package.id, "route_id": 1},
    )  # fmt: skip
    instrument.write("PUT", "", sdk.update_transfer, transfer.id, {"status": "transferring"})
    instrument.write("POST", "", sdk.log_transfer, transfer.id, {"message": "bbcp started"})
    instrument.write(
        "PUT", "/api/transfer/transfers/{id} completed",
        sdk.update_transfer, transfer.id, {"status": "completed"},
    )  # fmt: skip
    moved = sdk.get_raw_data_package(package.id)
    t.say(site, f"package now '{moved.status}' at the site (the archive copy is recorded)")
    instrument.latencies_ms.clear()
    last = eou
    for n in range(1, 6):
        last = instrument.write("POST", "", sdk.start_executed_obs_unit, {"obs_unit_id": 2})
        instrument.write("POST", "", sdk.register_files, _files(str(last.id), f"o{n}", 100))
    t.say(
        site,
        f"5 more observations, 100 files each: 10 writes buffered, slowest"
        f" {max(instrument.latencies_ms):.1f} ms",
    )
    files_now = sdk.list_raw_data_files(executed_obs_unit_id=last.id, limit=1)
    first_now = sdk.get_executed_obs_unit(eou.id)
    t.say(
        site,
        f"reads during the outage: last observation has {files_now.total} files,"
        f" the first is '{first_now.status}'",
    )
    at_main = dashboard.http.get(f"/executed_obs_units/{last.id}")
    t.say("main", f"GET that observation at main -> {at_main.status_code} (not there yet)")
    time.sleep(2)
    buffer = sdk.health().report["buffer"]
    t.say(site, f"buffer: {buffer['depth']} waiting, oldest {buffer['oldest_pending_age_s']:.1f}s")
    _say_metrics(t, site, sdk)

    stack.wan.up()
    t.say("wan", "link restored")
    started = time.monotonic()
    depth = buffer["depth"]
    while buffer["depth"] or buffer["awaiting_replica"]:
        time.sleep(0.25)
        buffer = sdk.health().report["buffer"]
        if buffer["depth"] != depth:
            depth = buffer["depth"]
            t.say(site, f"draining: {depth} waiting, {buffer['awaiting_replica']} awaiting replica")
        if time.monotonic() - started > DRAIN_TIMEOUT_S:
            raise RuntimeError("backlog did not drain within two minutes")
    t.say(
        site,
        f"backlog applied on main and visible here {time.monotonic() - started:.2f}s after the"
        " link came back",
    )
    time.sleep(METRICS_FRESH_S)
    _say_metrics(t, site, sdk)
    files_main = dashboard.read("/raw_data_files", executed_obs_unit_id=str(last.id), limit=1)
    first_main = dashboard.read(f"/executed_obs_units/{eou.id}")
    package_main = dashboard.read(f"/raw_data_package/{package.id}")
    t.say(
        "main",
        f"last observation: {files_main['total']} files; first: '{first_main['status']}',"
        f" package '{package_main['status']}'",
    )
    overview = dashboard.read("/api/transfer/overview")
    t.say(
        "main",
        f"transfer overview: {overview['transfers_by_status']['completed']} completed,"
        f" packages archived: {overview['packages_by_status']['archived']}",
    )
    t.say("summary", f"{buffer['dead_letters']} dead letters; no write waited for the WAN")
    t.say(
        "console",
        f"{stack.gateway_url(site)}/console (sign in with the admin token {tokens[Role.ADMIN]});"
        f" in a terminal: CCAT_API_URL={stack.gateway_url(site)}"
        f" CCAT_API_TOKEN={tokens[Role.ADMIN]} ccat-api status",
    )
    sdk.close()
    dashboard.http.close()
    planner.http.close()
