"""Structured logs as an operator greps them: JSON lines carrying the request id of the
request and the tx id of the transaction they are about, from the write to its replay."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.logs import log_handler
from tests.integration.conftest import Tokens
from tests.support import client, refused_on_main, serve

LogLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def json_logs() -> Iterator[LogLines]:
    """What the gateway and processor log, through the handler and JSON format they log
    with in service, parsed back line by line."""
    stream = io.StringIO()
    handler = log_handler("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_a_write_logs_its_request_id_and_tx_id(
    json_logs: LogLines, tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        answer = await http.post(
            "/executed_obs_units/start",
            json={"obs_unit_id": 1},
            headers={"X-Request-ID": "instrument-42-start"},
        )
        assert answer.status_code == 201, answer.text
        assert answer.headers["X-Request-ID"] == "instrument-42-start"
        listed = await http.get("/obs_units")
        generated = listed.headers["X-Request-ID"]
        assert len(generated) == 32
    access = [line for line in json_logs() if line["logger"] == "ccat_api.access"]
    (write,) = [line for line in access if line["request_id"] == "instrument-42-start"]
    assert write["tx_id"] == answer.json()["tx_id"]
    assert (write["method"], write["route"], write["status"]) == (
        "POST",
        "/executed_obs_units/start",
        201,
    )
    (read,) = [line for line in access if line["request_id"] == generated]
    # A read is about no transaction, whatever the request before it on this connection was.
    assert read["tx_id"] is None
    assert read["route"] == "/obs_units"


async def test_replay_logs_name_each_transaction_and_each_dead_letter(
    json_logs: LogLines,
    stack: Stack,
    tokens: Tokens,
    secondary_settings: Settings,
    worker: SiteWorker,
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        written = [
            (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()
            for _ in range(3)
        ]
    doomed = written[1]
    with refused_on_main(stack, "executed_obs_units", f"id <> '{doomed['id']}'::uuid"):
        assert await worker.processor.run_once() == 3
    # The processor logs its batches; recording their outcome (dead letters) is batches.py's.
    replay_loggers = {"ccat_api.buffering.processor", "ccat_api.buffering.batches"}
    replay = [line for line in json_logs() if line["logger"] in replay_loggers]
    (batch,) = [line for line in replay if line["message"].startswith("replayed 3 transactions")]
    tx_ids = [w["tx_id"] for w in written]
    assert batch["tx_ids"] == tx_ids
    assert (batch["first_tx_id"], batch["last_tx_id"]) == (tx_ids[0], tx_ids[-1])
    assert batch["lsn"] > 0
    (dead,) = [line for line in replay if line["message"].startswith("dead letter")]
    assert (dead["tx_id"], dead["level"]) == (doomed["tx_id"], "WARNING")
    assert dead["error_code"]
