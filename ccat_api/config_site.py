"""Which site this is and where its services are: its name and kind, the main database, the
local replica, Redis (alone or behind Sentinels) and how many Redis replicas confirm a
write. A group of settings that ``config.Settings`` inherits (its one source of defaults,
like every other setting)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, field_validator

# host:port, as Sentinel itself and redis-cli write it; refused at start, not at first use.
SentinelAddress = Annotated[str, Field(pattern=r"^\S+:\d{1,5}$")]


class SiteType(StrEnum):
    MAIN = "main"
    SECONDARY = "secondary"


class SiteSettings(BaseModel):
    site_name: str = Field(
        default="main",
        pattern=r"^[a-z][a-z0-9_-]{0,39}$",
        description="Name of this site; namespaces every Redis key and is recorded in every"
        " envelope.",
    )
    site_type: SiteType = Field(
        default=SiteType.MAIN,
        description="main: reads and writes go straight to the main database. secondary:"
        " critical writes are buffered in Redis and replayed on main; reads merge the replica.",
    )
    development: bool = Field(
        default=False,
        description="Development conveniences: the ccat-dev-token admin token and the"
        " placeholder session secret (never enable at a real site).",
    )

    main_db_url: str = Field(
        default="postgresql+asyncpg://ccat@127.0.0.1:5432/ccat",
        description="The authoritative main database (over the WAN at a secondary site).",
    )
    local_db_url: str = Field(
        default="",
        description="The site's local streaming replica (secondary sites only; empty at main).",
    )
    redis_url: str = Field(
        default="",
        description="The site's Redis, with AOF and appendfsync always. A secondary site buffers"
        " in it; at main it carries live monitoring across workers. With redis_sentinels set,"
        " only its database number and credentials are used: Sentinel names the primary.",
    )
    redis_username: str = Field(
        default="",
        description="The ACL user this component logs in to Redis as (gateway, processor,"
        " monitor: deploy/redis/users.acl), with redis_password; or put both in redis_url.",
    )
    redis_password: str = Field(
        default="",
        description="That user's password; better redis_password_file, which keeps it out of"
        " the environment.",
    )
    redis_sentinels: list[SentinelAddress] = Field(
        default_factory=list,
        description='The site\'s Redis Sentinels, as JSON (["10.0.0.5:26379", ...]); set, the'
        " gateway, processor and CLI find the buffer's primary through them and follow a"
        " failover.",
    )
    redis_sentinel_service: str = Field(
        default="ccat-buffer", description="The name the Sentinels monitor the primary under."
    )
    redis_pool_size: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Connections to Redis a process keeps at most. A request that finds them"
        " all busy (Redis slow for a moment) waits for one, as long as it would wait for"
        " Redis's answer, rather than being refused.",
    )
    buffer_min_replicas: int | None = Field(
        default=None,
        ge=0,
        description="Replicas that must confirm a critical write (Redis WAIT) before it is"
        " answered; empty: 1 with Sentinels, 0 with a single Redis. Too few: a 503 that says so.",
    )
    buffer_replica_timeout_ms: int = Field(
        default=1000, ge=1, description="How long a write waits for those replicas."
    )

    @field_validator("buffer_min_replicas", mode="before")
    @classmethod
    def _empty_is_automatic(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def min_replicas(self) -> int:
        """Replicas a critical write waits for: as set, else one where Sentinel runs the site's
        Redis (a primary and at least one replica), else none."""
        if self.buffer_min_replicas is not None:
            return self.buffer_min_replicas
        return 1 if self.redis_sentinels else 0

    @property
    def is_secondary(self) -> bool:
        return self.site_type is SiteType.SECONDARY

    @property
    def read_db_url(self) -> str:
        """Where reads go: the local replica at a secondary site, main otherwise."""
        return self.local_db_url if self.is_secondary else self.main_db_url
