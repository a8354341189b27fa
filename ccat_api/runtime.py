"""Everything a running gateway holds, built from Settings in one place.

The app's lifespan and the CLI's ``process`` command both build their parts here, so a
gateway and a standalone processor are wired the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.engine import make_url

from ccat_api.auth.authenticator import Authenticator
from ccat_api.auth.directory import Directory
from ccat_api.auth.github import GitHubLogin
from ccat_api.auth.sessions import SessionAuthenticator, SessionSigner
from ccat_api.auth.tokens import TokenAuthenticator
from ccat_api.auth.usage import TokenUsage
from ccat_api.buffering.buffer import WriteBuffer
from ccat_api.buffering.capacity import BufferCapacity
from ccat_api.buffering.direct import DirectApply
from ccat_api.buffering.executor import BatchExecutor
from ccat_api.buffering.gateway import WriteGateway
from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.lease import Lease
from ccat_api.buffering.ledger import TransactionLedger
from ccat_api.buffering.overlay import Overlay
from ccat_api.buffering.processor import Processor
from ccat_api.buffering.quotas import WriteQuota
from ccat_api.buffering.reads import MergedReader
from ccat_api.buffering.recorded import RecordedAnswers
from ccat_api.buffering.replication import ReplicaConfirmation
from ccat_api.buffering.tracker import LsnTracker
from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.db.engines import PrimaryDatabase, ReadDatabase, make_engine
from ccat_api.domain.references import ReferenceData
from ccat_api.waits import Backoff


def plain_dsn(url: str) -> str:
    """The libpq form asyncpg reads, from a SQLAlchemy URL: without the driver, and with
    SQLAlchemy's multi-host form (``?host=a:5432&host=b:5432``, main with a standby) as
    libpq's ``a:5432,b:5432``; ``target_session_attrs`` passes through."""
    parsed = make_url(url)
    hosts = parsed.query.get("host")
    if not hosts or isinstance(hosts, str):
        return url.replace("postgresql+asyncpg://", "postgresql://", 1)
    user = quote(parsed.username or "", safe="")
    password = f":{quote(parsed.password, safe='')}" if parsed.password else ""
    rest = urlencode({k: v for k, v in parsed.query.items() if k != "host"}, doseq=True)
    return f"postgresql://{user}{password}@{','.join(hosts)}/{parsed.database or ''}" + (
        f"?{rest}" if rest else ""
    )


# A Redis restart, or a Sentinel failover, should look like a short stall, not a failed
# request, when it is quick.
REDIS_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    "health_check_interval": 10,
    "retry_on_error": [RedisConnectionError, RedisTimeoutError],
}


# redis-py's own pool size. Its default pool refuses a command at once when every connection
# is busy ("Too many connections"): while the drain kept Redis busy, a burst of writes was
# refused with 503 that a moment later would have been accepted. These pools make it wait,
# for as long as it would wait for Redis's answer.
REDIS_POOL_SIZE = 100
REDIS_POOL_WAIT_S = float(REDIS_OPTIONS["socket_timeout"])


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """The primary the Sentinels name, through a pool that waits for a free connection."""


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3)


def make_redis(url: str, *, pool_size: int = REDIS_POOL_SIZE, **credentials: Any) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=REDIS_POOL_WAIT_S,
        retry=_retry(),
        **credentials,
        **REDIS_OPTIONS,
    )
    return Redis.from_pool(pool)


def redis_credentials(settings: Settings) -> dict[str, str]:
    """The component's Redis user, when set apart from redis_url (redis_username and
    redis_password, or its file); redis_url's own userinfo wins over these."""
    if not settings.redis_password:
        return {}
    return {"username": settings.redis_username or "default", "password": settings.redis_password}


class SentinelManagedRedis(Redis):
    """The primary Sentinel names; closing it closes the connections to the Sentinels too."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        for sentinel in getattr(manager, "sentinels", ()):
            await sentinel.aclose()


def site_redis(settings: Settings) -> Redis:
    """The site's Redis primary: the one ``redis_url`` names, or whichever the Sentinels say is
    primary now, found again after a failover (a reconnect asks them)."""
    if not settings.redis_sentinels:
        return make_redis(
            settings.redis_url, pool_size=settings.redis_pool_size, **redis_credentials(settings)
        )
    sentinels = []
    for address in settings.redis_sentinels:
        host, _, port = address.rpartition(":")
        sentinels.append((host, int(port)))
    # The database number and credentials still come from redis_url, when there is one.
    database = {
        **redis_credentials(settings),
        **(parse_url(settings.redis_url) if settings.redis_url else {}),  # type: ignore[no-untyped-call]
    }
    watcher = Sentinel(  # type: ignore[no-untyped-call]
        sentinels, socket_timeout=1, socket_connect_timeout=1
    )
    primary: Redis = watcher.master_for(
        settings.redis_sentinel_service,
        redis_class=SentinelManagedRedis,
        connection_pool_class=BlockingSentinelConnectionPool,
        max_connections=settings.redis_pool_size,
        timeout=REDIS_POOL_WAIT_S,
        retry=_retry(),
        db=database.get("db", 0),
        username=database.get("username"),
        password=database.get("password"),
        **REDIS_OPTIONS,
    )
    return primary


@dataclass
class Runtime:
    settings: Settings
    keys: SiteKeys
    read_db: ReadDatabase
    # Main, for what is never buffered (tokens, users, logins); across the WAN at a
    # secondary site, with timeouts so such requests fail fast instead of hanging.
    main_db: PrimaryDatabase
    redis: Redis | None
    reader: MergedReader
    gateway: WriteGateway
    ledger: TransactionLedger | None
    buffer: WriteBuffer | None
    directory: Directory
    authenticator: Authenticator
    signer: SessionSigner
    github: GitHubLogin
    references: ReferenceData

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        keys = SiteKeys(settings.site_name)
        read_db = ReadDatabase(
            make_engine(
                settings.read_db_url,
                pool_size=settings.db_pool_size,
                connect_timeout_s=settings.db_connect_timeout_s,
                application_name=f"ccat-api-{settings.site_name}-read",
            )
        )
        main_db = PrimaryDatabase(
            make_engine(
                settings.main_db_url,
                pool_size=settings.db_pool_size if not settings.is_secondary else 2,
                connect_timeout_s=settings.db_connect_timeout_s,
                application_name=f"ccat-api-{settings.site_name}-main",
                command_timeout_s=(
                    settings.main_request_timeout_s if settings.is_secondary else None
                ),
            )
        )
        redis = site_redis(settings) if settings.redis_url or settings.redis_sentinels else None
        quota = (
            WriteQuota(
                settings.write_rate_limit, redis=redis, keys=keys,
                redis_required=settings.is_secondary,
            )
            if settings.write_rate_limit
            else None
        )  # fmt: skip
        buffer: WriteBuffer | None = None
        ledger: TransactionLedger | None = None
        overlay: Overlay | None = None
        if settings.is_secondary:
            assert redis is not None
            buffer = WriteBuffer(redis, keys, idempotency_ttl_s=settings.idempotency_ttl_s)
            overlay = Overlay(redis, keys)
            ledger = TransactionLedger(redis, keys, status_ttl_s=settings.tx_status_ttl_s)
            replicas = ReplicaConfirmation(
                redis, keys, replicas=settings.min_replicas,
                timeout_ms=settings.buffer_replica_timeout_ms,
            )  # fmt: skip
            capacity = BufferCapacity(redis, max_fraction=settings.buffer_max_memory_fraction)
            gateway = WriteGateway(
                buffer=buffer, replicas=replicas, capacity=capacity, quota=quota,
                recorded=RecordedAnswers(read_db, required=False),
            )  # fmt: skip
        else:
            gateway = WriteGateway(
                direct=DirectApply(main_db, settings.site_name, redis=redis, keys=keys),
                quota=quota,
            )
        directory = Directory(read_db, cache_ttl_s=settings.token_cache_ttl_s)
        signer = SessionSigner(settings.session_secret, access_ttl_s=settings.access_token_ttl_s)
        return cls(
            settings=settings,
            keys=keys,
            read_db=read_db,
            main_db=main_db,
            redis=redis,
            reader=MergedReader(read_db, overlay),
            gateway=gateway,
            ledger=ledger,
            buffer=buffer,
            directory=directory,
            authenticator=Authenticator(
                TokenAuthenticator(read_db, directory, cache_ttl_s=settings.token_cache_ttl_s),
                SessionAuthenticator(signer, directory),
                TokenUsage(),
                development=settings.development,
            ),
            signer=signer,
            github=GitHubLogin(settings),
            references=ReferenceData(read_db, ttl_s=settings.reference_cache_ttl_s),
        )

    async def close(self) -> None:
        if self.gateway.capacity is not None:
            await self.gateway.capacity.close()
        await self.read_db.dispose()
        await self.main_db.dispose()
        if self.redis is not None:
            await self.redis.aclose()


def build_worker(settings: Settings, redis: Redis) -> SiteWorker:
    keys = SiteKeys(settings.site_name)
    lease = Lease(redis, keys, settings.processor_lease_ttl_s)
    executor = BatchExecutor(
        plain_dsn(settings.main_db_url),
        settings.site_name,
        timeout_s=settings.processor_main_timeout_s,
        connect_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_s=settings.main_statement_timeout_s,
        standby_names=settings.main_standby_names,
    )
    processor = Processor(
        redis,
        keys,
        executor,
        lease,
        batch_size=settings.processor_batch_size,
        poll_interval_s=settings.processor_poll_interval_s,
        backoff=Backoff(settings.processor_backoff_initial_s, settings.processor_backoff_max_s),
        schema_hold_retry_s=settings.schema_hold_retry_s,
        backlog_report_interval_s=settings.backlog_report_interval_s,
        keeps_undurable=bool(settings.main_standby_names),
    )
    tracker = LsnTracker(
        redis,
        keys,
        plain_dsn(settings.local_db_url),
        poll_interval_s=settings.tracker_poll_interval_s,
        timeout_s=settings.tracker_replica_timeout_s,
        status_ttl_s=settings.tx_status_ttl_s,
        confirms_kept=bool(settings.main_standby_names),
    )
    return SiteWorker(processor, tracker, lease)
