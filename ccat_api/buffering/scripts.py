"""The Lua scripts, each prefixed with the shared functions (overlay.lua, status.lua).

A script gets every key it knows in advance as KEYS and the key prefixes it builds the rest
from as arguments, all from keys.py (its docstring says which); the Lua spells no key name.

A script is called by its SHA1 and, on NOSCRIPT (a restarted Redis starts with an empty
script cache), loaded and called again. This is what redis-py's Script objects do too; a
direct EVALSHA skips their per-call bookkeeping, which shows on the write path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

Arg = str | bytes | int | float


def _source(name: str) -> str:
    return resources.files("ccat_api.buffering").joinpath("lua", name).read_text()


class Script:
    def __init__(self, redis: Redis, source: str) -> None:
        self._redis = redis
        self._source = source
        self._sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def load(self) -> None:
        await self._redis.script_load(self._source)

    async def __call__(self, *, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        command = ("EVALSHA", self._sha, len(keys), *keys, *args)
        try:
            return await self._redis.execute_command(*command)  # type: ignore[no-untyped-call]
        except NoScriptError:
            await self._redis.script_load(self._source)
            return await self._redis.execute_command(*command)  # type: ignore[no-untyped-call]


class Scripts:
    def __init__(self, redis: Redis) -> None:
        prelude = _source("overlay.lua") + "\n" + _source("status.lua")

        def load(name: str) -> Script:
            return Script(redis, prelude + "\n" + _source(name))

        self.accept = load("accept.lua")
        self.finish = load("finish.lua")
        self.visible = load("visible.lua")
        self.retry = load("retry.lua")
        self.discard = load("discard.lua")
        self.retention = load("retention.lua")
        self.page = load("page.lua")

    async def load_all(self) -> None:
        """Compile every script now rather than on the first write that needs it."""
        for script in (
            self.accept,
            self.finish,
            self.visible,
            self.retry,
            self.discard,
            self.retention,
        ):
            await script.load()
