"""What instrument machines install: the SDK imports no server-only dependency, and the
two clients offer the same operations."""

from __future__ import annotations

import inspect
import subprocess
import sys

from ccat_api.client import AsyncClient, Client
from ccat_api.client.core import ClientCore
from ccat_api.client.methods import Operation, Procedure

SERVER_ONLY = ("sqlalchemy", "fastapi", "starlette", "redis", "asyncpg", "uvicorn", "astropy")


def test_importing_the_sdk_pulls_in_no_server_dependency() -> None:
    probe = (
        "import sys, ccat_api.client; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({SERVER_ONLY!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


async def test_both_clients_offer_every_operation_with_one_signature() -> None:
    names = {
        name
        for declared in ClientCore.__mro__
        for name, value in vars(declared).items()
        if isinstance(value, Operation | Procedure)
    }
    assert len(names) >= 30
    assert {"wait_visible", "flush_spool"} <= names
    with Client("http://g", "t") as sync_client:
        async with AsyncClient("http://g", "t") as async_client:
            for name in names:
                sync_method = getattr(sync_client, name)
                async_method = getattr(async_client, name)
                assert inspect.signature(sync_method) == inspect.signature(async_method)
                assert inspect.iscoroutinefunction(async_method)
                assert not inspect.iscoroutinefunction(sync_method)
                assert sync_method.__doc__ == async_method.__doc__
