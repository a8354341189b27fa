"""When the gateway refuses a request rather than risk it or hang: a Redis that would not
keep a write, a buffer near its memory limit, a token over its write rate, and the bounds on
dependency probes and requests to main. A group of settings that ``config.Settings``
inherits (its one source of defaults, like every other setting)."""

from __future__ import annotations

import limits
from pydantic import BaseModel, Field, field_validator


class AdmissionSettings(BaseModel):
    health_probe_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="Bound on each dependency probe behind GET /health and the site status.",
    )
    require_durable_redis: bool = Field(
        default=True,
        description="Refuse critical writes (503) while a Redis of the site does not fsync its"
        " AOF on every write or may evict keys, and refuse to start when it answers so at"
        " start; checked at start and every 30 s.",
    )
    buffer_max_memory_fraction: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Backpressure: critical writes get 503 (with Retry-After) once the site's"
        " Redis uses this fraction of its maxmemory, before Redis itself refuses writes;"
        " no limit applies while maxmemory is 0 (unset). Read from INFO memory at most"
        " every 0.5 s.",
    )
    write_rate_limit: str = Field(
        default="",
        description="Critical writes allowed per token, in the `limits` library's notation"
        " ('50/second', '1000 per minute'); more get 429 with Retry-After. Counted in the"
        " site's Redis (in this process where the site has none); empty: no limit (the"
        " settings file's main and secondary sections set 50/second).",
    )
    main_request_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Writes that are not buffered (tokens, users, logins) go to main; past this"
        " they fail with 503 instead of hanging on a dead link.",
    )

    @field_validator("write_rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        value = value.strip()
        if value:
            try:
                limits.parse(value)
            except ValueError as exc:
                raise ValueError(
                    f"{value!r} is not a rate limit; write it like '50/second' or"
                    " '1000 per minute' (empty: no limit)"
                ) from exc
        return value
