"""The Lua scripts, each prefixed with the shared overlay functions.

redis-py's Script objects resend the source on NOSCRIPT, so a restarted Redis (whose
script cache is empty) needs nothing special from us.
"""

from __future__ import annotations

from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


def _source(name: str) -> str:
    return resources.files("ccat_api.buffering").joinpath("lua", name).read_text()


class Scripts:
    def __init__(self, redis: Redis) -> None:
        prelude = _source("overlay.lua")

        def load(name: str) -> AsyncScript:
            return redis.register_script(prelude + "\n" + _source(name))

        self.accept = load("accept.lua")
        self.finish = load("finish.lua")
        self.visible = load("visible.lua")
        self.retry = load("retry.lua")
        self.discard = load("discard.lua")
