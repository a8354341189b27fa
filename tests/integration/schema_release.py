"""The release that finishes the test-only revisions' rename in the code (envelope version 2,
``t_digest``), made as a developer would make it, from a copy of this package, and run as
real gateway and processor processes (test_schema_changes.py)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

import ccat_api
from ccat_api.devstack.stack import Stack
from ccat_api.devstack.system import free_port
from tests.support import eventually

# The next release: the code side of t100/t101's rename, the edits a developer makes once the
# expand step is out (file under ccat_api/, the text there now, what the release has instead).
# Each must be found exactly once: when the code moves, this fails rather than run old code.
RELEASE_EDITS = [
    ("buffering/envelope.py", "SCHEMA_VERSION = 1\n", "SCHEMA_VERSION = {version}\n"),
    (
        "db/models/observations.py",
        "    size_bytes: Mapped[int] = mapped_column(BigInteger)\n    checksum: Mapped[str]\n",
        "    size_bytes: Mapped[int] = mapped_column(BigInteger)\n    t_digest: Mapped[str]\n",
    ),
    (
        "domain/raw_data.py",
        '            "checksum": f.checksum,\n',
        '            "t_digest": f.checksum,\n',
    ),
    # The API keeps its field name; the release reads it from the renamed column.
    (
        "schemas/raw_data.py",
        "from pydantic import Field, model_validator\n",
        "from pydantic import AliasChoices, Field, model_validator\n",
    ),
    (
        "schemas/raw_data.py",
        "    size_bytes: int\n    checksum: str\n",
        "    size_bytes: int\n"
        '    checksum: str = Field(validation_alias=AliasChoices("t_digest", "checksum"))\n',
    ),
]


def make_release(root: Path, envelope_version: int = 2) -> Path:
    """A copy of this package with ``RELEASE_EDITS`` applied, under ``root``: put ``root`` on
    PYTHONPATH to run it."""
    package = root / "ccat_api"
    shutil.copytree(
        Path(ccat_api.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__")
    )
    for name, before, after in RELEASE_EDITS:
        path = package / name
        text = path.read_text()
        assert text.count(before) == 1, f"{name}: the release's edit expects {before!r} once"
        path.write_text(text.replace(before, after.format(version=envelope_version)))
    return root


def log_tails(logs: Path) -> str:
    return "\n".join(
        f"--- {log.name} ---\n{log.read_text(errors='replace')[-5000:]}"
        for log in sorted(logs.glob("release-*.log"))
    )


@contextlib.asynccontextmanager
async def release_running(
    stack: Stack, release: Path, overrides: dict[str, Any], logs: Path
) -> AsyncIterator[str]:
    """``release``'s gateway (``ccat-api serve``) and processor (``ccat-api process``), started
    as the stack starts its own, with ``overrides`` for settings: the gateway's URL."""
    port = free_port()
    # From the release's directory: ``-m`` puts the working directory first on sys.path.
    env = {**stack.env_for(overrides), "PYTHONPATH": str(release), "PYTHONUNBUFFERED": "1"}
    commands = {
        "gateway": ["serve", "--host", "127.0.0.1", "--port", str(port)],
        "processor": ["process"],
    }
    processes: list[asyncio.subprocess.Process] = []
    failed = False
    try:
        for name, args in commands.items():
            with (logs / f"release-{name}.log").open("ab") as log:
                processes.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        "ccat_api",
                        *args,
                        env=env,
                        cwd=release,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                )
        url = f"http://127.0.0.1:{port}"

        async def answers() -> bool:
            assert all(p.returncode is None for p in processes), "the release exited"
            try:
                async with httpx.AsyncClient(base_url=url, timeout=2) as http:
                    await http.get("/health")  # 503 while degraded: an answer all the same
                return True
            except httpx.TransportError:
                return False

        await eventually(answers, timeout_s=60, interval_s=0.2)
        yield url
    except BaseException:
        failed = True
        raise
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await asyncio.wait_for(process.wait(), 20)
        if failed:
            print(log_tails(logs))
