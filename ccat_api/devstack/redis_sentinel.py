"""The site's buffer as production runs it: a Redis primary, its replicas and three Sentinels
(Debian's ``redis-server`` and ``redis-sentinel``), started from the files an operator deploys
(``deploy/redis/redis.conf`` and ``deploy/redis-sentinel/sentinel.conf``), so the tests that
use this set load them.
Only ports, directories, the primary's address and the passwords are changed (every member
and Sentinel of the set shares one set of ACL users), and a shorter
``down-after-milliseconds`` so a failover takes seconds. The primary refuses writes while fewer
than ``min_replicas`` replicas are in sync (``min-replicas-to-write``), and each replica is
configured the same way, so the one Sentinel promotes keeps that rule. ``kill_primary()`` is
SIGKILL, for failover tests.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from ccat_api.devstack.redis_server import RedisServer
from ccat_api.devstack.redis_users import RedisUsers, write_secret
from ccat_api.devstack.system import free_port, wait_port

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "redis"
# A Sentinel file is loaded by redis-sentinel, never by redis-server: a directory of its own.
SENTINEL_DEPLOY_DIR = DEPLOY_DIR.with_name("redis-sentinel")
SERVICE = "ccat-buffer"
# Sentinels declare the primary down after this long without an answer: short, so tests and
# the demo see a failover within seconds (production: deploy/redis-sentinel/sentinel.conf).
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
# A replica further behind than this no longer counts as in sync for min-replicas-to-write.
REPLICA_MAX_LAG_S = 10


@dataclass
class SentinelServer:
    data_dir: Path
    port: int
    primary_port: int
    # The sentinel user's password on the set's Redis servers.
    auth_pass: str = field(default="", repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout_s: float = 20.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "sentinel.conf"
        # Sentinel rewrites its own config file as it learns the set: a copy of the deployed
        # one, with this machine's ports and directory.
        write_secret(
            config,
            render_sentinel_conf(self.port, self.data_dir, self.primary_port, self.auth_pass),
        )
        self.process = subprocess.Popen(
            ["redis-sentinel", str(config), "--logfile", str(self.data_dir / "sentinel.log")],
            stdin=subprocess.DEVNULL,
        )
        if not wait_port(self.port, timeout_s):
            raise RuntimeError(f"redis-sentinel did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def render_sentinel_conf(port: int, data_dir: Path, primary_port: int, auth_pass: str) -> str:
    """deploy/redis-sentinel/sentinel.conf with a port, a directory, the primary's address and
    the sentinel user's password."""
    lines = []
    for line in (SENTINEL_DEPLOY_DIR / "sentinel.conf").read_text().splitlines():
        words = line.split()
        if words[:1] == ["port"]:
            line = f"port {port}\nbind 127.0.0.1"
        elif words[:1] == ["dir"]:
            line = f"dir {data_dir}"
        elif words[:3] == ["sentinel", "monitor", SERVICE]:
            line = f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} {words[5]}"
        elif words[:3] == ["sentinel", "down-after-milliseconds", SERVICE]:
            line = f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}"
        elif words[:3] == ["sentinel", "failover-timeout", SERVICE]:
            line = f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}"
        elif words[:3] == ["sentinel", "auth-pass", SERVICE]:
            line = f"sentinel auth-pass {SERVICE} {auth_pass}"
        lines.append(line)
    return "\n".join(lines) + "\n"


@dataclass
class RedisSentinelSet:
    base_dir: Path
    replicas: int = 1
    min_replicas: int = 1
    sentinel_count: int = 3
    members: list[RedisServer] = field(default_factory=list)
    sentinels: list[SentinelServer] = field(default_factory=list)
    users: RedisUsers | None = None

    def __post_init__(self) -> None:
        self.users = (self.users or RedisUsers(self.base_dir / "users")).create()
        safety = [
            "--min-replicas-to-write", str(self.min_replicas),
            "--min-replicas-max-lag", str(REPLICA_MAX_LAG_S),
        ]  # fmt: skip
        primary_port = free_port()
        config = DEPLOY_DIR / "redis.conf"
        self.members = [
            RedisServer(self.base_dir / "redis-0", primary_port, list(safety), config, self.users)
        ]
        for i in range(1, self.replicas + 1):
            args = [*safety, "--replicaof", "127.0.0.1", str(primary_port)]
            self.members.append(
                RedisServer(self.base_dir / f"redis-{i}", free_port(), args, config, self.users)
            )
        self.sentinels = [
            SentinelServer(
                self.base_dir / f"sentinel-{i}",
                free_port(),
                primary_port,
                self.users.password("sentinel"),
            )
            for i in range(self.sentinel_count)
        ]

    @property
    def sentinel_addresses(self) -> list[str]:
        return [f"127.0.0.1:{s.port}" for s in self.sentinels]

    def start(self) -> None:
        for member in self.members:
            member.start()
        self.wait_replicas_in_sync()
        for sentinel in self.sentinels:
            sentinel.start()
        self.wait_primary_known(self.members[0].port)

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for member in self.members:
            member.stop()

    def named_primaries(self) -> list[int | None]:
        """The primary's port as each Sentinel names it (None: not running or no answer)."""
        named: list[int | None] = []
        for sentinel in self.sentinels:
            found = None
            if sentinel.process is not None:
                client = redis.Redis(port=sentinel.port, socket_timeout=1)
                try:
                    found = client.sentinel_get_master_addr_by_name(SERVICE)
                except redis.RedisError:
                    pass
                finally:
                    client.close()
            named.append(int(found[1]) if isinstance(found, tuple) else None)
        return named

    def primary_port(self) -> int:
        """Where the Sentinels say the primary is now."""
        for port in self.named_primaries():
            if port is not None:
                return port
        raise RuntimeError("no Sentinel names a primary")

    def member_on(self, port: int) -> RedisServer:
        return next(m for m in self.members if m.port == port)

    def kill_primary(self) -> RedisServer:
        """SIGKILL the current primary; its data survives in its AOF for a restart."""
        primary = self.member_on(self.primary_port())
        if primary.process is not None:
            primary.process.send_signal(signal.SIGKILL)
            primary.process.wait(timeout=10)
        primary.process = None
        return primary

    def wait_primary_known(self, port: int | None = None, timeout_s: float = 30.0) -> int:
        """Until every Sentinel names the same primary (``port``, when given)."""
        deadline = time.monotonic() + timeout_s
        while True:
            named = set(self.named_primaries())
            (agreed,) = named if len(named) == 1 else (None,)
            if agreed is not None and (port is None or agreed == port):
                return agreed
            if time.monotonic() > deadline:
                raise TimeoutError(f"Sentinels disagree on the primary: {named}")
            time.sleep(0.1)

    def wait_replicas_in_sync(self, timeout_s: float = 30.0) -> None:
        """Until the primary counts ``min_replicas`` replicas in sync (it takes writes then)."""
        deadline = time.monotonic() + timeout_s
        # Before the Sentinels start, the first member is the primary by construction.
        started = any(sentinel.process is not None for sentinel in self.sentinels)
        port = self.primary_port() if started else self.members[0].port
        client = self.member_on(port).client(socket_timeout=2)
        try:
            while True:
                info = client.info("replication")
                online = [
                    v for k, v in info.items()
                    if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"
                ]  # fmt: skip
                if len(online) >= self.min_replicas:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(online)} replicas in sync on port {port}")
                time.sleep(0.05)
        finally:
            client.close()
