"""The WAN simulator's control API over HTTP and its command line."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccat_api.devstack.system import free_port
from ccat_api.devstack.wan import (
    AsyncWanControl,
    ControlServer,
    LinkSpec,
    WanControl,
    WanSimulator,
    main,
    parse_hostport,
)
from tests.devstack.wan_loopback import WAIT_S, Clients, Upstream, assert_dropped, round_trip_s

pytestmark = pytest.mark.timeout(30)

REPO_ROOT = Path(__file__).resolve().parents[2]


# --- control API -------------------------------------------------------------------------------


async def test_control_api_over_http(
    upstream: Upstream, wan: WanSimulator, clients: Clients
) -> None:
    server = ControlServer(wan)
    await server.start()
    try:
        async with (
            AsyncWanControl(server.base_url) as ctl,
            httpx.AsyncClient(base_url=server.base_url, trust_env=False) as raw,
        ):
            await ctl.wait_ready(WAIT_S)
            state = await ctl.state()
            assert state["delay_ms"] == 0
            assert state["down"] is False
            (link,) = state["links"]
            assert link["name"] == "db"
            assert link["listen"] == f"127.0.0.1:{wan.listen_port('db')}"
            assert link["upstream"] == f"127.0.0.1:{upstream.port}"
            assert (link["active"], link["total"], link["bytes_up"], link["bytes_down"]) == (
                0,
                0,
                0,
                0,
            )

            assert state["bandwidth_mbit"] is None
            await ctl.set_bandwidth(20)
            assert wan.bandwidth_mbit == 20
            await ctl.set_bandwidth(None)
            assert wan.bandwidth_mbit is None

            await ctl.set_delay(120)
            await ctl.down()
            assert wan.delay_ms == 120
            assert wan.down is True
            await ctl.up()
            assert (await ctl.state())["down"] is False
            put = await raw.put("/state", json={"delay_ms": 0, "down": True})
            assert put.status_code == 200
            assert put.json()["delay_ms"] == 0
            assert put.json()["down"] is True
            await ctl.up()

            bad_bodies: list[tuple[Any, str]] = [
                ({"delay_ms": -1}, "delay_ms"),
                ({"delay_ms": 1.5}, "delay_ms"),
                ({"delay_ms": True}, "delay_ms"),
                ({"down": "yes"}, "down"),
                ({"delay_ms": 7, "down": 1}, "down"),
                ({"latency": 3}, "latency"),
                ({"bandwidth_mbit": -1}, "bandwidth_mbit"),
                ({"bandwidth_mbit": "fast"}, "bandwidth_mbit"),
                ([1, 2], "body"),
            ]
            for body, field_name in bad_bodies:
                response = await raw.put("/state", json=body)
                assert response.status_code == 422, body
                assert field_name in response.json()["detail"]
            not_json = await raw.put("/state", content=b"{nope")
            assert not_json.status_code == 422
            assert wan.delay_ms == 0  # the half-valid request changed nothing
            with pytest.raises(ValueError, match="delay_ms"):
                await ctl.set_delay(-5)

            reader, writer = await clients.open(wan.listen_port("db"))
            await round_trip_s(reader, writer)
            assert await ctl.cut() == 1
            await assert_dropped(reader)
            cut = await raw.post("/cut")
            assert cut.json() == {"cut": 0}
            state = await ctl.state()
            assert state["links"][0]["total"] == 1
            assert state["links"][0]["bytes_up"] == len(b"ping")
            assert (await raw.get("/cut")).status_code == 405
    finally:
        await server.stop()


async def test_wait_ready_times_out_without_a_server() -> None:
    async with AsyncWanControl(f"http://127.0.0.1:{free_port()}") as ctl:
        with pytest.raises(TimeoutError):
            await ctl.wait_ready(0.3)


# --- CLI ---------------------------------------------------------------------------------------


def test_link_and_address_parsing() -> None:
    assert LinkSpec.parse("db=127.0.0.1:15432=10.0.0.5:5432") == LinkSpec(
        "db", "127.0.0.1", 15432, "10.0.0.5", 5432
    )
    assert parse_hostport("[::1]:80") == ("::1", 80)
    for bad in ("db=127.0.0.1:1", "db=127.0.0.1=x:2", "=a:1=b:2", "db=a:1=b:99999"):
        with pytest.raises(ValueError, match="expected"):
            LinkSpec.parse(bad)
    with pytest.raises(SystemExit) as exited:
        main(["--link", "nonsense", "--control", "127.0.0.1:1"])
    assert exited.value.code == 2


async def test_cli_forwards_and_exits_cleanly_on_sigterm(
    upstream: Upstream, clients: Clients
) -> None:
    listen_port, control_port = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ccat_api.devstack.wan",
        "--link",
        f"db=127.0.0.1:{listen_port}=127.0.0.1:{upstream.port}",
        "--control",
        f"127.0.0.1:{control_port}",
        "--delay-ms",
        "25",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line == b"wan ready\n"
        reader, writer = await clients.open(listen_port)
        assert 0.05 - 1e-3 <= await round_trip_s(reader, writer) < 1.0

        # The blocking client runs in a thread: this loop also serves the upstream.
        with WanControl(f"http://127.0.0.1:{control_port}") as ctl:
            await asyncio.to_thread(ctl.wait_ready, WAIT_S)
            state = await asyncio.to_thread(ctl.state)
            assert state["delay_ms"] == 25
            assert state["links"][0]["active"] == 1
            await asyncio.to_thread(ctl.set_delay, 200)
            await asyncio.to_thread(ctl.down)
            await asyncio.to_thread(ctl.up)
            assert 0.4 - 1e-3 <= await round_trip_s(reader, writer) < 2.0
            assert await asyncio.to_thread(ctl.cut) == 1
        await assert_dropped(reader)

        proc.send_signal(signal.SIGTERM)
        rest, stderr = await asyncio.wait_for(proc.communicate(), WAIT_S)
        assert proc.returncode == 0, stderr.decode()
        assert rest == b""
        assert b"Traceback" not in stderr, stderr.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()


def test_control_state_is_json_serializable() -> None:
    sim = WanSimulator([LinkSpec("a", "127.0.0.1", 0, "127.0.0.1", 1)], delay_ms=7)
    decoded = json.loads(json.dumps(sim.state()))
    assert decoded["delay_ms"] == 7
    assert decoded["links"][0]["listen"] == "127.0.0.1:0"
    with pytest.raises(ValueError, match="delay_ms"):
        sim.set_delay(-1)
    with pytest.raises(ValueError, match="unique"):
        WanSimulator([LinkSpec("a", "h", 1, "h", 2), LinkSpec("a", "h", 3, "h", 4)])
