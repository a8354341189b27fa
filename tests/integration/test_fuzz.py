"""The API fuzzed from outside: Schemathesis generates requests from the OpenAPI document of
a running main site and a running secondary site (valid and invalid ones, with an admin
token) and checks every answer: no 5xx, bodies and headers that match the document, only
documented statuses, invalid input refused, Allow naming exactly the documented methods,
every protected operation refusing a request without credentials. Then the secondary site's buffer must hold exactly the writes that got
a 2xx: a refused critical write leaves nothing behind.

The fuzzer writes whatever it likes, so it runs on a stack of its own. The run is bounded
(``CCAT_FUZZ_EXAMPLES`` cases per operation, a fixed seed unless ``CCAT_FUZZ_SEED`` is
set); ``make fuzz`` runs a longer one with a fresh seed, and a failing seed is printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ccat_api.app import create_app
from ccat_api.auth.tokens import issue_service_token
from ccat_api.buffering.keys import SiteKeys
from ccat_api.config import Settings
from ccat_api.db.engines import PrimaryDatabase, make_engine
from ccat_api.devstack.stack import Stack
from ccat_api.runtime import make_redis
from tests.support import running_stack, serve

FUZZ_EXAMPLES = int(os.environ.get("CCAT_FUZZ_EXAMPLES", "6"))
FUZZ_SEED = int(os.environ.get("CCAT_FUZZ_SEED") or 20261206)
FUZZ_TIMEOUT_S = float(os.environ.get("CCAT_FUZZ_TIMEOUT_S", "600"))
SITE = "fuzzed"

# Operations the fuzzer must not call with an admin token, because one lucky id would lock
# the run out (its own token revoked, its own account disabled or demoted) or leave the
# machine (GitHub's login). Each is covered by its own tests (authorization, bad input).
EXCLUDED = [
    ("DELETE", "/tokens/{token_id}"),
    ("PATCH", "/users/{user_id}"),
    ("GET", "/auth/github/login"),
    ("GET", "/auth/github/callback"),
]
# Every check but positive_data_acceptance, which expects any schema-valid body to be taken:
# here a valid shape can still name a record that does not exist or break a rule between
# fields (a 422 the document lists). use_after_free and ensure_resource_availability are
# read-your-writes from outside: a created record can be read at once, a deleted one is gone.
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
        "ignored_auth",
        "use_after_free",
        "ensure_resource_availability",
    ]
)


@pytest.fixture(scope="module")
def fuzz_stack() -> Iterator[Stack]:
    with running_stack() as started:
        yield started


@pytest.fixture(scope="module")
def admin_token(fuzz_stack: Stack) -> str:
    async def create() -> str:
        db = PrimaryDatabase(
            make_engine(fuzz_stack.main_db.url(), pool_size=1, connect_timeout_s=5,
                        application_name="fuzz")
        )  # fmt: skip
        try:
            return (await issue_service_token(db, "fuzz-admin", "admin")).plaintext
        finally:
            await db.dispose()

    token = asyncio.run(create())
    fuzz_stack.wait_replica_caught_up()
    return token


def excluded_operation_ids(document: dict[str, Any]) -> list[str]:
    found = [
        document["paths"][path][method.lower()]["operationId"]
        for method, path in EXCLUDED
        if method.lower() in document["paths"].get(path, {})
    ]
    assert len(found) == len(EXCLUDED), "an excluded operation no longer exists: update EXCLUDED"
    return found


async def run_schemathesis(
    url: str, token: str, report: Path, document: dict[str, Any]
) -> tuple[int, str]:
    argv = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
        "--checks", os.environ.get("CCAT_FUZZ_CHECKS", CHECKS),
        "--header", f"Authorization: Bearer {token}",
        "--max-examples", str(FUZZ_EXAMPLES),
        "--seed", str(FUZZ_SEED),
        "--workers", "1",
        "--request-timeout", "30",
        "--report", "har", "--report-har-path", str(report),
        "--output-sanitize", "false",
        "--suppress-health-check", "all",
    ]  # fmt: skip
    for operation_id in excluded_operation_ids(document):
        argv += ["--exclude-operation-id", operation_id]
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"},
        cwd=report.parent,  # its own state directory (.schemathesis) stays out of the checkout
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), FUZZ_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


def accepted_tx_ids(har: Path) -> tuple[set[str], int]:
    """The tx ids of every buffered write the site answered with a 2xx, and how many requests
    the fuzzer sent."""
    entries: list[dict[str, Any]] = json.loads(har.read_text())["log"]["entries"]
    accepted = set()
    for entry in entries:
        response = entry["response"]
        text = response.get("content", {}).get("text") or ""
        if 200 <= response["status"] < 300 and '"buffered"' in text:
            body = json.loads(text)
            if isinstance(body, dict) and body.get("status") == "buffered":
                accepted.add(body["tx_id"])
    return accepted, len(entries)


async def buffered_tx_ids(redis_url: str) -> set[str]:
    redis = make_redis(redis_url)
    try:
        entries = await redis.xrange(SiteKeys(SITE).stream) or []
        found = set()
        for _, fields in entries:
            tx = (fields or {})[b"tx"]
            found.add(tx.decode() if isinstance(tx, bytes) else tx)
        return found
    finally:
        await redis.aclose()


@pytest.mark.parametrize("site_type", ["secondary", "main"])
async def test_the_fuzzer_finds_no_server_error_and_no_undocumented_answer(
    fuzz_stack: Stack, admin_token: str, site_type: str, tmp_path: Path
) -> None:
    secondary = site_type == "secondary"
    settings = Settings.model_validate(
        {**fuzz_stack.settings_overrides(SITE if secondary else None, secondary=secondary),
         "run_processor": False, "token_cache_ttl_s": 0}
    )  # fmt: skip
    report = tmp_path / "fuzz.har"
    document = create_app(settings).openapi()
    async with serve(settings) as url:
        code, output = await run_schemathesis(url, admin_token, report, document)
    replay = (
        f"replay with CCAT_FUZZ_SEED={FUZZ_SEED} CCAT_FUZZ_EXAMPLES={FUZZ_EXAMPLES}"
        f" pytest {__file__}"
    )
    assert code == 0, f"{output[-20000:]}\n{replay}"
    accepted, sent = accepted_tx_ids(report)
    assert sent > 500, f"the fuzzer sent only {sent} requests:\n{output[-5000:]}"
    if secondary:
        # At least some writes were valid enough to be buffered, or the check below is empty.
        assert accepted, "no write was accepted: the fuzzer never reached the buffer"
        assert await buffered_tx_ids(settings.redis_url) == accepted
