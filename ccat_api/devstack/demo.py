"""The scripted demo played by ``ccat-api stack up``: an instrument at the observatory keeps
writing through a WAN outage, and the backlog drains and becomes visible when it heals.

It talks to the gateways over real HTTP like any client, and prints a timeline.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from ccat_api.auth.tokens import issue_token
from ccat_api.db.engines import PrimaryDatabase, make_engine
from ccat_api.db.models import Role
from ccat_api.devstack.stack import MAIN_SITE, Stack

FILE = {"size_bytes": 52_428_800, "file_type": "fits", "instrument_module_id": 1}


class Timeline:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, where: str, what: str) -> None:
        print(f"[{time.monotonic() - self.started:7.2f}s] {where:<12} {what}", flush=True)


def _tokens(stack: Stack) -> dict[Role, str]:
    async def make() -> dict[Role, str]:
        db = PrimaryDatabase(
            make_engine(
                stack.main_db.url(), pool_size=1, connect_timeout_s=5, application_name="demo"
            )
        )
        try:
            return {
                role: (await issue_token(db, name=f"demo-{role.value}", role=role)).plaintext
                for role in (Role.OPERATOR, Role.VIEWER, Role.ADMIN)
            }
        finally:
            await db.dispose()

    return asyncio.run(make())


def _timed(
    http: httpx.Client, method: str, path: str, **kwargs: Any
) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = http.request(method, path, **kwargs)
    return response, (time.perf_counter() - started) * 1000


def _wait(predicate: Any, timeout_s: float, interval_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False


def run_demo(stack: Stack) -> None:
    site = stack.config.secondary_site
    t = Timeline()
    tokens = _tokens(stack)
    stack.wait_replica_caught_up()
    t.say("setup", "tokens issued on main: instrument (operator), dashboard (viewer), admin")
    instrument = httpx.Client(
        base_url=stack.gateway_url(site),
        headers={"Authorization": f"Bearer {tokens[Role.OPERATOR]}"},
        timeout=10,
    )
    dashboard_main = httpx.Client(
        base_url=stack.gateway_url(MAIN_SITE),
        headers={"Authorization": f"Bearer {tokens[Role.VIEWER]}"},
        timeout=10,
    )
    with instrument, dashboard_main:
        _wait(lambda: instrument.get("/health").status_code == 200, 30)
        health = instrument.get("/health").json()
        t.say(site, f"health: redis ok, replica in recovery={health['replica']['in_recovery']},"
              f" WAN round trip {2 * stack.config.wan_delay_ms} ms")  # fmt: skip

        r, ms = _timed(
            instrument,
            "POST",
            "/executed_obs_units/start",
            json={"obs_unit_id": 1, "instrument_module_id": 2},
        )
        eou = r.json()
        t.say(
            site,
            f"POST /executed_obs_units/start -> {r.status_code} {eou['status']} in {ms:.1f} ms (id {eou['id'][:8]}…)",
        )
        r, ms = _timed(
            instrument,
            "POST",
            "/raw_data_files/bulk",
            json={
                "files": [
                    {
                        **FILE,
                        "name": f"scan_{i:03d}.fits",
                        "relative_path": f"{eou['id']}/scan_{i:03d}.fits",
                        "checksum": f"sha256:{i:064x}",
                        "executed_obs_unit_id": eou["id"],
                    }
                    for i in range(50)
                ]
            },
        )
        t.say(
            site,
            f"POST /raw_data_files/bulk (50 files) -> {r.status_code} {r.json()['status']} in {ms:.1f} ms",
        )
        files = r.json()["ids"]
        r, ms = _timed(
            instrument,
            "POST",
            "/raw_data_package",
            json={
                "name": f"pkg-{eou['id']}",
                "executed_obs_unit_id": eou["id"],
                "instrument_module_id": 2,
                "raw_data_file_ids": files,
            },
        )
        package = r.json()
        t.say(site, f"POST /raw_data_package -> {r.status_code} {package['status']} in {ms:.1f} ms")
        last_tx = package["tx_id"]

        def visible(tx_id: str) -> bool:
            return bool(instrument.get(f"/transactions/{tx_id}").json()["state"] == "visible")

        started = time.monotonic()
        _wait(lambda: visible(last_tx), 30, 0.02)
        t.say(
            site,
            f"replayed on main and visible on the local replica {time.monotonic() - started:.2f}s later",
        )
        got = dashboard_main.get(f"/raw_data_package/{package['id']}").json()
        t.say("main", f"GET /raw_data_package -> {got['status']}, {got['file_count']} files")

        stack.wan.down()
        t.say("wan", "OUTAGE: the link to main is down (packets held, nothing gets through)")
        r, ms = _timed(
            instrument,
            "PUT",
            f"/raw_data_package/{package['id']}/finalize",
            json={"checksum": "md5:0123456789abcdef"},
        )
        t.say(
            site,
            f"PUT /raw_data_package/…/finalize -> {r.status_code} {r.json()['status']} in {ms:.1f} ms",
        )
        r, ms = _timed(
            instrument,
            "PUT",
            f"/executed_obs_units/{eou['id']}/finish",
            json={"status": "success", "mean_pwv_mm": 0.6},
        )
        t.say(
            site,
            f"PUT /executed_obs_units/…/finish -> {r.status_code} {r.json()['status']} in {ms:.1f} ms",
        )
        latencies = []
        second = None
        for n in range(1, 6):
            r, ms = _timed(instrument, "POST", "/executed_obs_units/start", json={"obs_unit_id": 2})
            latencies.append(ms)
            second = r.json()
            r, ms = _timed(
                instrument,
                "POST",
                "/raw_data_files/bulk",
                json={
                    "files": [
                        {
                            **FILE,
                            "name": f"obs{n}_{i:03d}.fits",
                            "relative_path": f"{second['id']}/{i:03d}.fits",
                            "checksum": f"sha256:{n:032x}{i:032x}",
                            "executed_obs_unit_id": second["id"],
                        }
                        for i in range(100)
                    ]
                },
            )
            latencies.append(ms)
        t.say(
            site,
            f"5 more observations with 100 files each: 10 writes, all buffered, slowest {max(latencies):.1f} ms",
        )
        assert second is not None
        read = instrument.get(
            "/raw_data_files", params={"executed_obs_unit_id": second["id"], "limit": 1}
        ).json()
        status = instrument.get(f"/executed_obs_units/{eou['id']}").json()["status"]
        t.say(
            site,
            f"reads at the site during the outage: last observation has {read['total']} files; first is '{status}'",
        )
        main_view = dashboard_main.get(f"/executed_obs_units/{second['id']}")
        t.say("main", f"GET that observation at main -> {main_view.status_code} (not there yet)")
        time.sleep(2)
        health = instrument.get("/health").json()
        t.say(site, f"buffer: {health['buffer']['depth']} transactions waiting, oldest"
              f" {health['buffer']['oldest_pending_age_s']:.1f}s; processor {health['processor'].get('state')}")  # fmt: skip

        stack.wan.up()
        t.say("wan", "link restored")
        started = time.monotonic()
        depth = health["buffer"]["depth"]
        while depth or health["buffer"]["awaiting_replica"]:
            time.sleep(0.25)
            health = instrument.get("/health").json()
            if health["buffer"]["depth"] != depth:
                depth = health["buffer"]["depth"]
                t.say(
                    site,
                    f"draining: {depth} waiting, {health['buffer']['awaiting_replica']} awaiting the replica",
                )
            if time.monotonic() - started > 120:
                raise RuntimeError("backlog did not drain within two minutes")
        t.say(
            site,
            f"backlog applied on main and visible at the site {time.monotonic() - started:.2f}s after the link came back",
        )
        main_files = dashboard_main.get(
            "/raw_data_files", params={"executed_obs_unit_id": second["id"], "limit": 1}
        ).json()
        main_eou = dashboard_main.get(f"/executed_obs_units/{eou['id']}").json()
        package_main = dashboard_main.get(f"/raw_data_package/{package['id']}").json()
        t.say("main", f"main now has the last observation's {main_files['total']} files; first observation"
              f" '{main_eou['status']}', its package '{package_main['status']}'")  # fmt: skip
        dead = instrument.get("/health").json()["buffer"]["dead_letters"]
        t.say("summary", f"{dead} dead letters; every write answered without waiting for the WAN")
