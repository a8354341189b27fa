"""Every command that needs main's database or the site's Redis, run as an operator runs it
with nothing listening where the settings point: one line on stderr and exit code 1, no
traceback."""

from __future__ import annotations

import asyncio
import os
import sys

from ccat_api.devstack.system import free_port

DB_COMMANDS = (
    ("migrate",),
    ("seed",),
    ("tokens", "create", "--user", "prometheus", "--role", "observer"),
    ("tokens", "list"),
    ("tokens", "revoke", "abcdef"),
    ("users", "create", "prometheus", "--role", "observer"),
    ("users", "list"),
)


async def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ccat_api", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err.decode()


def environment(**settings: str) -> dict[str, str]:
    # Only these settings: a CCAT_* variable of the test run must not point somewhere real.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCAT_")}
    return {**env, "CCAT_ENV": "development", "CCAT_LOG_LEVEL": "WARNING", **settings}


async def test_commands_on_main_say_in_one_line_that_the_database_is_unreachable() -> None:
    port = free_port()  # nothing listens there
    env = environment(CCAT_MAIN_DB_URL=f"postgresql+asyncpg://ccat:x@127.0.0.1:{port}/ccat")
    results = await asyncio.gather(*(run(env, *command) for command in DB_COMMANDS))
    expected = (
        f"error cannot reach the database: [Errno 111] Connect call failed ('127.0.0.1', {port})"
    )
    for command, (code, err) in zip(DB_COMMANDS, results, strict=True):
        assert (code, err.strip().splitlines()) == (1, [expected]), (command, err)


async def test_the_processor_says_in_one_line_that_redis_is_unreachable() -> None:
    port = free_port()
    env = environment(
        CCAT_SITE_TYPE="secondary",
        CCAT_SITE_NAME="observatory",
        CCAT_MAIN_DB_URL=f"postgresql+asyncpg://ccat:x@127.0.0.1:{free_port()}/ccat",
        CCAT_LOCAL_DB_URL=f"postgresql+asyncpg://ccat:x@127.0.0.1:{free_port()}/ccat",
        CCAT_REDIS_URL=f"redis://127.0.0.1:{port}/0",
    )
    code, err = await run(env, "process", "--burst")
    assert code == 1, err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        f"error cannot reach Redis: Error 111 connecting to 127.0.0.1:{port}. Connect call"
        f" failed ('127.0.0.1', {port})."
    ]
