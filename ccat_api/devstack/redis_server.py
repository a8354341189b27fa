"""A throwaway Redis with the durability a secondary site needs: AOF, fsync on every write,
and no access without a user and password (``deploy/redis/users.acl``, ``redis_users.py``).

``kill()`` is SIGKILL, so restarts exercise recovery from the append-only file alone.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from ccat_api.devstack.redis_users import ADMIN, RedisUsers, write_secret
from ccat_api.devstack.system import wait_port

DEPLOYED_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "redis" / "redis.conf"
# Settings of the deployed file that shape what the site keeps, not how this stack runs it:
# every Redis of the stack takes them from there, so tests and benchmarks see its memory.
DEPLOYED_SHAPE = ("hash-max-listpack-",)


def deployed_shape(config: Path = DEPLOYED_CONFIG) -> list[str]:
    """Those settings of ``config`` as redis-server arguments."""
    argv: list[str] = []
    for line in config.read_text().splitlines():
        name, _, value = line.strip().partition(" ")
        if name.startswith(DEPLOYED_SHAPE):
            argv += [f"--{name}", value.strip()]
    return argv


@dataclass
class RedisServer:
    data_dir: Path
    port: int
    # For a member of a replicated set: replicaof, min-replicas-to-write and the like.
    extra_args: list[str] = field(default_factory=list)
    # A configuration file to load first (deploy/redis/redis.conf): the arguments after it
    # (port, directory, the durability settings) win over what it says.
    config_file: Path | None = None
    # Shared by every member of a replicated set; a Redis of its own makes its own.
    users: RedisUsers | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.users is None:
            self.users = RedisUsers(self.data_dir.parent / f"{self.data_dir.name}-users")

    @property
    def acl(self) -> RedisUsers:
        assert self.users is not None
        return self.users

    @property
    def url(self) -> str:
        """As the stack's administrator (checks, tests); components use ``url_for``."""
        return self.url_for(ADMIN)

    def url_for(self, user: str) -> str:
        return self.acl.url(user, self.port)

    def client(self, **options: object) -> redis.Redis:
        """A synchronous client logged in as the administrator."""
        return redis.Redis(
            port=self.port,
            username=ADMIN,
            password=self.acl.password(ADMIN),
            **options,  # type: ignore[arg-type]
        )

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / "redis.log"

    def start(self, timeout_s: float = 20.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config: list[str] = []
        self.acl.create()
        if self.config_file is not None:
            # Sentinel makes a Redis rewrite its config file (CONFIG REWRITE) when it moves
            # it: the instance gets a copy, never the deployed file itself. The password a
            # replica logs in to its primary with (as the deployed masteruser) is added to
            # the copy, which is therefore its owner's alone.
            copy = self.data_dir / "redis.conf"
            write_secret(
                copy,
                self.config_file.read_text() + f"\nmasterauth {self.acl.password('replica')}\n",
            )
            config = [str(copy)]
        argv = [
            "redis-server",
            *config,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.log_file),
            # A buffer must never silently drop keys under memory pressure.
            "--maxmemory-policy", "noeviction",
            # The deployed users with this stack's passwords, where the deployed file says
            # /etc/redis/users.acl.
            "--aclfile", str(self.acl.write_acl(self.data_dir / "users.acl")),
            *deployed_shape(),
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        if not wait_port(self.port, timeout_s):
            raise RuntimeError(f"redis did not start on port {self.port}; see {self.log_file}")
        # The port opens before the AOF is loaded; until then every command answers LOADING.
        client = self.client(socket_timeout=2)
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.BusyLoadingError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """Die without a chance to save: recovery must come from the AOF alone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def restart_after_kill(self) -> None:
        self.kill()
        self.start()
