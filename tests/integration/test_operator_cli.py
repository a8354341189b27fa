"""``ccat-api status`` and ``ccat-api dead-letters ...`` as an operator runs them: real
subprocesses talking to a real gateway over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from typing import Any

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.devstack.system import free_port
from tests.integration.conftest import Tokens
from tests.support import client, refused_on_main, serve, serve_asgi


async def ccat_api(
    url: str, token: str, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    env = {
        **os.environ, "CCAT_API_URL": url, "CCAT_API_TOKEN": token, "COLUMNS": "200",
        **(env or {}),
    }  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ccat_api", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_status_shows_the_buffer_and_recent_transactions(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        written = [
            (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()
            for _ in range(2)
        ]
        code, out, err = await ccat_api(url, tokens.observer, "status")
        # No processor runs for this site: a warning, and the last line says so.
        assert code == 1, err
        assert out.strip().splitlines()[-1] == "WARNING: processor absent"
        assert f"{secondary_settings.site_name} (secondary)" in out
        assert "2 waiting" in out
        for write in written:
            assert write["tx_id"] in out
        code, _, err = await ccat_api(url, "ccat_nope_nope", "status")
        assert code == 1
        assert "401" in err


async def test_dead_letters_are_listed_shown_retried_and_discarded(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        first, second = [
            (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()
            for _ in range(2)
        ]
        with refused_on_main(
            stack, "executed_obs_units", f"id NOT IN ('{first['id']}', '{second['id']}')"
        ):
            assert await worker.processor.run_once() == 2

        code, out, err = await ccat_api(url, tokens.admin, "dead-letters", "list")
        assert code == 0, err
        assert first["tx_id"] in out
        assert second["tx_id"] in out
        assert "2 dead letter(s)" in out
        code, out, err = await ccat_api(url, tokens.admin, "dead-letters", "show", first["tx_id"])
        assert code == 0, err
        shown = json.loads(out)
        assert (shown["tx_id"], shown["state"]) == (first["tx_id"], "failed")
        assert shown["error_code"]

        # An operator may look but not act.
        code, _, err = await ccat_api(url, tokens.operator, "dead-letters", "retry", "--all")
        assert code == 1
        assert "operate:buffer" in err

        code, out, err = await ccat_api(
            url, tokens.admin, "dead-letters", "discard", second["tx_id"], "--yes"
        )
        assert code == 0, err
        assert "1 transaction(s) discarded" in out
        code, out, err = await ccat_api(url, tokens.admin, "dead-letters", "retry", "--all")
        assert code == 0, err
        assert f"retried {first['tx_id']}" in out
        assert "1 transaction(s) back in the buffer" in out

        async with client(url, tokens.admin) as admin:
            states = {
                tx["tx_id"]: (await admin.get(f"/transactions/{tx['tx_id']}")).json()["state"]
                for tx in (first, second)
            }
        assert states == {first["tx_id"]: "buffered", second["tx_id"]: "discarded"}
        assert await worker.processor.run_once() == 1
        code, out, _ = await ccat_api(url, tokens.admin, "dead-letters", "list")
        assert (code, out.strip()) == (0, "no dead letters")


async def test_dead_letter_commands_refuse_a_malformed_id_in_one_line() -> None:
    # Nothing listens here: the id is refused before anything is asked of a gateway.
    url = "http://127.0.0.1:9"
    commands = (("show", "not-a-tx"), ("retry", "not-a-tx"), ("discard", "not-a-tx", "--yes"))
    results = await asyncio.gather(
        *(ccat_api(url, "ccat_any_token", "dead-letters", *args) for args in commands)
    )
    for args, (code, out, err) in zip(commands, results, strict=True):
        assert code == 2, (args, out, err)
        assert "Traceback" not in err
        assert err.strip().splitlines() == [
            "error TX_ID: 'not-a-tx' is not a transaction id (a UUID)"
        ], args


async def test_status_says_the_buffer_is_unavailable_while_redis_is_down(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url:
        await asyncio.to_thread(stack.redis.kill)
        try:
            code, out, err = await ccat_api(url, tokens.observer, "status")
        finally:
            await asyncio.to_thread(stack.redis.start)
        assert code == 2, err
        assert re.search(r"^buffer +unavailable \(Redis: .+\)$", out, re.M), out
        assert out.strip().splitlines()[-1].startswith("CRITICAL: buffer unavailable (Redis: ")


async def test_status_exit_code_and_json_follow_the_site(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:

        async def status(*options: str) -> tuple[int, dict[str, Any]]:
            code, out, err = await ccat_api(url, tokens.observer, "status", "--json", *options)
            assert "Traceback" not in err
            document = json.loads(out)
            assert document["exit_code"] == code
            return code, document

        applied = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()
        # The processor's run leaves its heartbeat: it is present, idle.
        assert await worker.processor.run_once() == 1
        code, document = await status()
        assert (code, document["level"], document["findings"]) == (0, "ok", []), document
        assert document["status"]["site"] == secondary_settings.site_name
        assert document["status"]["processor"]["state"] == "idle"
        assert applied["tx_id"] in [tx["tx_id"] for tx in document["recent"]]

        pending = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()
        code, document = await status("--warn-pending-age-s", "0")
        assert (code, document["level"]) == (1, "warning"), document
        assert [f["check"] for f in document["findings"]] == ["pending_age"]
        code, document = await status("--warn-pending-age-s", "0", "--critical-pending-age-s", "0")
        assert (code, document["level"]) == (2, "critical"), document

        with refused_on_main(stack, "executed_obs_units", f"id <> '{pending['id']}'"):
            assert await worker.processor.run_once() == 1
        code, document = await status()
        assert (code, document["findings"]) == (
            2, [{"level": "critical", "check": "dead_letters", "message": "1 dead letter(s)"}]
        ), document  # fmt: skip
        # Each status above starts a Python process: on a busy machine these steps outlast
        # the heartbeat's 30 s, and an absent processor is a finding of its own.
        assert await worker.processor.run_once() == 0
        code, document = await status("--critical-dead-letters", "1")
        assert code == 0, document

        code, out, err = await ccat_api(url, tokens.observer, "status")
        assert code == 2, err
        assert out.strip().splitlines()[-1] == "CRITICAL: 1 dead letter(s)"


async def test_status_thresholds_come_from_the_settings_and_options_override_them(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        poison = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()
        with refused_on_main(stack, "executed_obs_units", f"id <> '{poison['id']}'"):
            assert await worker.processor.run_once() == 1
        tolerant = {"CCAT_STATUS_CRITICAL_DEAD_LETTERS": "1"}

        async def level(*options: str, env: dict[str, str] | None = None) -> int:
            code, out, err = await ccat_api(
                url, tokens.observer, "status", "--json", *options, env=env
            )
            assert "Traceback" not in err
            assert json.loads(out)["exit_code"] == code
            return code

        assert await level() == 2  # the model's default: any dead letter is critical
        assert await level(env=tolerant) == 0
        assert await level("--critical-dead-letters", "0", env=tolerant) == 2

        # A wrong value is said in one line, naming the setting.
        code, out, err = await ccat_api(
            url, tokens.observer, "status", env={"CCAT_STATUS_CRITICAL_DEAD_LETTERS": "-1"}
        )
        assert (code, out) == (1, ""), err
        assert err.strip().startswith("error settings: status_critical_dead_letters: "), err
        assert len(err.strip().splitlines()) == 1


async def test_status_is_critical_in_one_line_when_the_gateway_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, out, err = await ccat_api(url, "ccat_any_token", "status", "--json")
    assert code == 2, (out, err)
    assert json.loads(out)["level"] == "critical"
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith(f"CRITICAL: cannot reach {url}: "), err
    code, out, err = await ccat_api(url, "ccat_any_token", "status")
    assert (code, out) == (2, ""), err


async def test_status_is_critical_when_the_gateway_answers_a_server_error() -> None:
    async def failing_gateway(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 500,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b'{"detail": "boom"}'})

    async with serve_asgi(failing_gateway) as url:
        code, out, err = await ccat_api(url, "ccat_any_token", "status", "--json")
    assert code == 2, (out, err)
    assert json.loads(out)["findings"][0]["message"] == f"{url} answered 500: boom"
    assert err.strip() == f"CRITICAL: {url} answered 500: boom"
