"""A throwaway Redis with the durability a secondary site needs: AOF, fsync on every write.

``kill()`` is SIGKILL, so restarts exercise recovery from the append-only file alone.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from ccat_api.devstack.system import wait_port


@dataclass
class RedisServer:
    data_dir: Path
    port: int
    # For a member of a replicated set: replicaof, min-replicas-to-write and the like.
    extra_args: list[str] = field(default_factory=list)
    # A configuration file to load first (deploy/redis/redis.conf): the arguments after it
    # (port, directory, the durability settings) win over what it says.
    config_file: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / "redis.log"

    def start(self, timeout_s: float = 20.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config: list[str] = []
        if self.config_file is not None:
            # Sentinel makes a Redis rewrite its config file (CONFIG REWRITE) when it moves
            # it: the instance gets a copy, never the deployed file itself.
            copy = self.data_dir / "redis.conf"
            shutil.copyfile(self.config_file, copy)
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
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        if not wait_port(self.port, timeout_s):
            raise RuntimeError(f"redis did not start on port {self.port}; see {self.log_file}")
        # The port opens before the AOF is loaded; until then every command answers LOADING.
        client = redis.Redis(port=self.port, socket_timeout=2)
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
