"""The SDK's spool against a real gateway that goes away and comes back (real PostgreSQL,
replica and Redis; the gateway served, stopped and served again on one port): writes made
meanwhile reach main once each and in order, a sender killed by SIGKILL mid-flush loses and
repeats nothing, a full spool refuses the next write, and ``ccat-api spool`` reports and
sends as an operator runs it."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ccat_api.app import create_app
from ccat_api.buffering.worker import SiteWorker
from ccat_api.client import (
    AsyncClient,
    Client,
    RetryPolicy,
    SpoolFull,
    SpoolOptions,
    WriteResult,
    WriteSpooled,
)
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.devstack.system import free_port
from tests.integration.conftest import Tokens
from tests.support import (
    apply_backlog,
    buffer_state,
    client,
    complete_package,
    eventually,
    fetch,
    fetchval,
    serve,
    serve_asgi,
    start_transfer,
)

# A refused connection fails at once; two attempts keep a write's wait in an outage short.
INSTRUMENT = RetryPolicy(max_attempts=2, backoff_initial_s=0.05, backoff_max_s=0.05)
LINES = 1000


async def a_transfer(url: str, token: str, name: str) -> str:
    """A new transfer of a new complete package."""
    async with client(url, token) as http:
        _, package = await complete_package(http, name)
        return await start_transfer(http, package)


async def lines_on_main(stack: Stack, transfer: str) -> list[Any]:
    """The transfer's log lines on main, in the order the gateway took them (UUIDv7 ids)."""
    return await fetch(
        stack.main_db.dsn(),
        "SELECT message, logged_at FROM data_transfer_logs WHERE data_transfer_id = $1 ORDER BY id",
        transfer,
    )


async def applied_on_main(stack: Stack, site: str) -> int:
    return int(
        await fetchval(
            stack.main_db.dsn(), "SELECT count(*) FROM applied_transactions WHERE site = $1", site
        )
    )


def write_lines(sdk: Client, transfer: str, numbers: range, progress_every: int) -> list[str]:
    """The instrument: a log line per number, and a progress update after every
    ``progress_every`` lines; what became of each write (delivered or spooled)."""
    outcomes = []

    def attempt(write: Callable[[], WriteResult]) -> None:
        try:
            write()
            outcomes.append("delivered")
        except WriteSpooled:
            outcomes.append("spooled")

    for n in numbers:
        attempt(functools.partial(sdk.log_transfer, transfer, {"message": f"line {n:04}"}))
        if n % progress_every == progress_every - 1:
            progress = {"status": "transferring", "bytes_transferred": n + 1}
            attempt(functools.partial(sdk.update_transfer, transfer, progress))
    return outcomes


async def test_writes_made_while_the_gateway_is_down_reach_main_once_and_in_order(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker, tmp_path: Path
) -> None:
    site = secondary_settings.site_name
    port = free_port()
    async with serve(secondary_settings, port) as url:
        transfer = await a_transfer(url, tokens.service, f"pkg-{site}")
    setup = await buffer_state(secondary_settings.redis_url, site)
    # The gateway is stopped: nothing listens on its port.
    spool = SpoolOptions(tmp_path / "spool.db", resend_initial_s=0.1, resend_max_s=0.5)
    sdk = Client(url, tokens.service, retry=INSTRUMENT, spool=spool, on_retry=lambda _: None)
    try:
        during = await asyncio.to_thread(write_lines, sdk, transfer, range(600), 100)
        assert set(during) == {"spooled"}
        assert sdk.spool_status().entries == 606

        async with serve(secondary_settings, port):
            after = await asyncio.to_thread(write_lines, sdk, transfer, range(600, LINES), 100)
            assert len(after) == 404

            async def drained() -> bool:
                return sdk.spool_status().entries == 0

            await eventually(drained, timeout_s=60, interval_s=0.1)
            done = await asyncio.to_thread(sdk.update_transfer, transfer, {"status": "completed"})
            assert done.http_status == 200
        status = sdk.spool_status()
        assert (status.entries, status.rejected) == (0, 0)
    finally:
        await asyncio.to_thread(sdk.close)

    await apply_backlog(worker)
    lines = await lines_on_main(stack, transfer)
    assert [line["message"] for line in lines] == [f"line {n:04}" for n in range(LINES)]
    # Stamped when written, not when delivered: in the order written.
    stamps = [line["logged_at"] for line in lines]
    assert stamps == sorted(stamps)
    assert await applied_on_main(stack, site) == setup["stream"] + LINES + 10 + 1
    transferred = await fetch(
        stack.main_db.dsn(),
        "SELECT status, bytes_transferred, bytes_total FROM data_transfers WHERE id = $1",
        transfer,
    )
    assert tuple(transferred[0]) == ("completed", 3000, 3000)


@dataclass
class AnswerHeld:
    """The gateway, holding back its answer to the ``hold``-th write (after taking it) until
    ``release`` is set; notes each write's Idempotency-Key as it arrives."""

    app: ASGIApp
    hold: int
    keys: list[str] = field(default_factory=list)
    taken: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "GET":
            await self.app(scope, receive, send)
            return
        self.keys.append(dict(scope["headers"])[b"idempotency-key"].decode())
        if len(self.keys) != self.hold:
            await self.app(scope, receive, send)
            return

        async def held(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.taken.set()
                await self.release.wait()
            await send(message)

        await self.app(scope, receive, held)


async def ccat_api(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ccat_api", *args,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def finished(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def spool_while_down(url: str, token: str, path: Path, transfer: str, count: int) -> None:
    options = SpoolOptions(path, background=False)
    with Client(url, token, retry=INSTRUMENT, spool=options, on_retry=lambda _: None) as sdk:
        assert set(write_lines(sdk, transfer, range(count), count + 1)) == {"spooled"}


async def test_a_sender_killed_mid_flush_loses_nothing_and_repeats_nothing(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker, tmp_path: Path
) -> None:
    site, port, path = secondary_settings.site_name, free_port(), tmp_path / "spool.db"
    count, hold = 60, 25
    async with serve(secondary_settings, port) as url:
        transfer = await a_transfer(url, tokens.service, f"pkg-{site}")
    setup = await buffer_state(secondary_settings.redis_url, site)
    await asyncio.to_thread(spool_while_down, url, tokens.service, path, transfer, count)

    gateway = AnswerHeld(create_app(secondary_settings), hold=hold)
    async with serve_asgi(gateway, port):
        flush = ("spool", "flush", "--path", str(path), "--url", url, "--token", tokens.service)
        sender = await ccat_api(*flush)
        try:
            # The gateway has taken write #hold and not yet answered: the sender dies now.
            await asyncio.wait_for(gateway.taken.wait(), 60)
        finally:
            sender.send_signal(signal.SIGKILL)
            code, _, _ = await finished(sender)
        gateway.release.set()
        assert code == -signal.SIGKILL
        held = await buffer_state(secondary_settings.redis_url, site)
        assert held["stream"] == setup["stream"] + hold

        code, out, err = await finished(await ccat_api(*flush))
        assert code == 0, err
        assert f"{count - hold + 1} write(s) delivered, 0 refused, 0 left" in out

    # Write #hold was sent twice with its one key; every other write once.
    assert len(gateway.keys) == count + 1
    assert gateway.keys[hold - 1] == gateway.keys[hold]
    assert len(set(gateway.keys)) == count
    await apply_backlog(worker)
    lines = await lines_on_main(stack, transfer)
    assert [line["message"] for line in lines] == [f"line {n:04}" for n in range(count)]
    assert await applied_on_main(stack, site) == setup["stream"] + count


async def test_a_full_spool_refuses_the_next_write_and_the_command_line_sends_the_rest(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker, tmp_path: Path
) -> None:
    site, port, path = secondary_settings.site_name, free_port(), tmp_path / "spool.db"
    async with serve(secondary_settings, port) as url:
        transfer = await a_transfer(url, tokens.service, f"pkg-{site}")
    options = SpoolOptions(path, max_entries=20, background=False)
    async with AsyncClient(
        url, tokens.service, retry=INSTRUMENT, spool=options, on_retry=lambda _: None
    ) as sdk:
        for n in range(20):
            with pytest.raises(WriteSpooled):
                await sdk.log_transfer(transfer, {"message": f"line {n:04}"})
        with pytest.raises(SpoolFull, match="full: 20 writes"):
            await sdk.log_transfer(transfer, {"message": "one too many"})
    env = {"CCAT_API_URL": url, "CCAT_API_TOKEN": tokens.service}

    code, out, err = await finished(await ccat_api("spool", "status", "--path", str(path)))
    assert code == 0, err
    assert "20 (bound 20)" in out
    assert "no answer after 2 attempt(s)" in out
    assert "token " in out

    code, out, err = await finished(await ccat_api("spool", "flush", "--path", str(path), env=env))
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert f"not sent to {url}" in err
    assert "20 write(s) left" in err
    assert "Traceback" not in err

    async with serve(secondary_settings, port):
        code, out, err = await finished(
            await ccat_api("spool", "flush", "--path", str(path), env=env)
        )
        assert code == 0, err
        assert "20 write(s) delivered, 0 refused, 0 left" in out
    await apply_backlog(worker)
    lines = await lines_on_main(stack, transfer)
    assert [line["message"] for line in lines] == [f"line {n:04}" for n in range(20)]
