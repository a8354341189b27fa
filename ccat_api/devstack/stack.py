r"""The local two-site stack: one launcher for the demo, the tests and the benchmarks.

    main site                          WAN simulator                secondary site
    main PostgreSQL (primary) <--- [delay, outage switch] <--- processor, gateway (secondary)
          ^    ^                                           \--- streaming replica (hot standby)
          |    '-- gateway (main)                               Redis (AOF, fsync always)

Everything runs on free loopback ports in one temporary directory; PostgreSQL runs as the
unprivileged ``postgres`` user when we are root. ``down()`` stops every process and removes
the directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccat_api.devstack.postgres import PostgresCluster
from ccat_api.devstack.redis_sentinel import RedisSentinelSet
from ccat_api.devstack.redis_server import RedisServer
from ccat_api.devstack.system import ensure_installed, free_port, wait_port
from ccat_api.devstack.wan import WanControl

MAIN_SITE = "main"
SECONDARY_SITE = "observatory"


@dataclass
class StackConfig:
    base_dir: Path | None = None
    wan_delay_ms: int = 100  # one way: 200 ms round trip, the observatory's typical link
    replica_via_wan: bool = True  # replication crosses the WAN too, as it does in reality
    gateways: bool = True
    # "separate": a `ccat-api process` of its own; "gateway": inside the secondary gateway;
    # "none": whoever uses the stack drives the processor (tests call run_once()).
    processor: str = "separate"
    secondary_site: str = SECONDARY_SITE
    extra_env: dict[str, str] = field(default_factory=dict)
    # 0: one Redis (the demo, small sites). N: a primary, N replicas and three Sentinels, and
    # critical writes wait for a replica (Redis WAIT) before they are answered.
    redis_replicas: int = 0
    # Main as a primary and a streaming standby (asynchronous, like a Patroni pair without
    # synchronous_mode): gateways and the processor reach it through a multi-host address
    # and follow a promotion (``fail_over_main``).
    main_standby: bool = False
    keep_files: bool = False


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_file: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 15.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)
        code = self.process.returncode
        self.process = None
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)
        self.process = None

    def wait(self, timeout_s: float) -> int:
        assert self.process is not None
        code = self.process.wait(timeout=timeout_s)
        self.process = None
        return code


class Stack:
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.base_dir = self.config.base_dir or Path(tempfile.mkdtemp(prefix="ccat-stack-"))
        self.main_db = PostgresCluster("main-db", self.base_dir / "main-db" / "data", free_port())
        self.replica = PostgresCluster("replica", self.base_dir / "replica" / "data", free_port())
        # ``main_db`` is main's primary, ``main_standby`` its standby: fail_over_main swaps them.
        self.main_standby: PostgresCluster | None = None
        if self.config.main_standby:
            self.main_standby = PostgresCluster(
                "main-standby", self.base_dir / "main-standby" / "data", free_port()
            )
            # One replication role for the pair: whichever is primary has it.
            self.main_standby.replication_password = self.main_db.replication_password
        # The WAN link (listen port) to each main node, by node name.
        self.main_wan_ports = {self.main_db.name: free_port()}
        if self.main_standby is not None:
            self.main_wan_ports[self.main_standby.name] = free_port()
        self.redis_set: RedisSentinelSet | None = None
        if self.config.redis_replicas:
            self.redis_set = RedisSentinelSet(
                self.base_dir / "redis", replicas=self.config.redis_replicas
            )
            # The first primary; after a failover, redis_set.primary_port() says which it is.
            self.redis = self.redis_set.members[0]
        else:
            self.redis = RedisServer(self.base_dir / "redis", free_port())
        self.wan_port = self.main_wan_ports[self.main_db.name]
        self.wan_control_port = free_port()
        self.wan_process: ManagedProcess | None = None
        self.gateways: dict[str, ManagedProcess] = {}
        self.gateway_ports: dict[str, int] = {}
        self.processor: ManagedProcess | None = None
        # The stack's own processor serves its replay histograms here (Prometheus text).
        self.processor_metrics_port: int | None = None
        self.started = False
        # Both sites' gateways sign and verify session tokens with the same secret.
        self.session_secret = secrets.token_urlsafe(32)

    # --- addresses -------------------------------------------------------------------------

    @property
    def wan(self) -> WanControl:
        return WanControl(f"http://127.0.0.1:{self.wan_control_port}")

    @property
    def main_nodes(self) -> list[PostgresCluster]:
        return [self.main_db] + ([self.main_standby] if self.main_standby is not None else [])

    @property
    def main_url_via_wan(self) -> str:
        if self.main_standby is None:
            return f"postgresql+asyncpg://ccat@127.0.0.1:{self.wan_port}/ccat"
        return self._multi_host_url(sorted(self.main_wan_ports.values()))

    @property
    def main_url(self) -> str:
        """Main for the main site's gateway (no WAN): every node when it has a standby."""
        if self.main_standby is None:
            return self.main_db.url()
        return self._multi_host_url(sorted(node.port for node in self.main_nodes))

    @staticmethod
    def _multi_host_url(ports: list[int]) -> str:
        # SQLAlchemy's form for asyncpg; runtime.plain_dsn turns it into libpq's for asyncpg.
        hosts = "&".join(f"host=127.0.0.1:{port}" for port in ports)
        return f"postgresql+asyncpg://ccat@/ccat?{hosts}&target_session_attrs=read-write"

    def gateway_url(self, site: str) -> str:
        return f"http://127.0.0.1:{self.gateway_ports[site]}"

    def settings_overrides(
        self, site: str | None = None, *, secondary: bool = True
    ) -> dict[str, Any]:
        """Settings for a gateway or processor of this stack (tests pass them to Settings)."""
        if not secondary:
            return {
                "site_name": site or MAIN_SITE,
                "site_type": "main",
                "main_db_url": self.main_url,
                "local_db_url": "",
                "redis_url": "",
                "session_secret": self.session_secret,
            }
        return {
            "session_secret": self.session_secret,
            "site_name": site or self.config.secondary_site,
            "site_type": "secondary",
            "main_db_url": self.main_url_via_wan,
            "local_db_url": self.replica.url(),
            "redis_url": self.redis.url,
            **(
                {"redis_sentinels": self.redis_set.sentinel_addresses}
                if self.redis_set is not None
                else {}
            ),
            **(
                {"main_standby_names": [node.name for node in self.main_nodes]}
                if self.main_standby is not None
                else {}
            ),
            "processor_backoff_initial_s": 0.1,
            "processor_backoff_max_s": 2.0,
            "processor_main_timeout_s": 10.0,
            "processor_lease_ttl_s": 5.0,
            "db_connect_timeout_s": 3.0,
            "health_probe_timeout_s": 1.0,
        }

    def env_for(self, overrides: dict[str, Any]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCAT_")}
        env["CCAT_ENV"] = "default"
        for key, value in overrides.items():
            if isinstance(value, bool):
                env[f"CCAT_{key.upper()}"] = str(value).lower()
            elif isinstance(value, list | dict):
                env[f"CCAT_{key.upper()}"] = json.dumps(value)
            else:
                env[f"CCAT_{key.upper()}"] = str(value)
        env.update(self.config.extra_env)
        return env

    # --- lifecycle -------------------------------------------------------------------------

    def up(self, progress: Any = None) -> None:
        say = progress or (lambda message: None)
        # The postgres user must reach its directories below ours.
        os.chmod(self.base_dir, 0o755)  # noqa: S103
        ensure_installed()
        say("main PostgreSQL (primary, wal_level=replica)")
        self.main_db.init_primary()
        self.main_db.start()
        self.main_db.create_app_database()
        say("schema migrations and seed data on main")
        self._migrate_and_seed()
        if self.main_standby is not None:
            say("main's streaming standby (asynchronous)")
            self.main_standby.init_replica_of(self.main_db)
            self.main_standby.start()
        say(f"WAN simulator ({2 * self.config.wan_delay_ms} ms round trip)")
        self._start_wan()
        say("streaming replica (pg_basebackup, hot standby)")
        self.replica.init_replica_of(
            self.main_db,
            upstreams=[
                (
                    "127.0.0.1",
                    self.main_wan_ports[node.name] if self.config.replica_via_wan else node.port,
                )
                for node in self.main_nodes
            ],
        )
        self.replica.start()
        if self.main_standby is not None:
            # The site's slot on the standby too, so the replica streams on after a promotion.
            self.main_standby.create_slot(self.replica.slot_name)
        if self.redis_set is not None:
            say(
                f"Redis primary, {self.config.redis_replicas} replica(s) and three Sentinels"
                " (AOF, appendfsync always, min-replicas-to-write 1)"
            )
            self.redis_set.start()
        else:
            say("Redis (AOF, appendfsync always)")
            self.redis.start()
        self.started = True
        if self.config.gateways:
            say("gateways")
            self.start_gateway(MAIN_SITE, secondary=False)
            self.start_gateway(
                self.config.secondary_site,
                secondary=True,
                run_processor=self.config.processor == "gateway",
            )
        if self.config.processor == "separate":
            say("processor and LSN tracker")
            self.start_processor(metrics_port=free_port())

    def _migrate_and_seed(self) -> None:
        from ccat_api.db import migrate
        from ccat_api.db.engines import PrimaryDatabase, make_engine
        from ccat_api.db.seed import seed

        migrate.upgrade(self.main_db.url())

        async def run_seed() -> None:
            db = PrimaryDatabase(
                make_engine(
                    self.main_db.url(), pool_size=1, connect_timeout_s=5, application_name="seed"
                )
            )
            try:
                await seed(db)
            finally:
                await db.dispose()

        asyncio.run(run_seed())

    def _start_wan(self) -> None:
        self.wan_process = ManagedProcess(
            "wan",
            [
                sys.executable,
                "-m",
                "ccat_api.devstack.wan",
                *[
                    arg
                    for node in self.main_nodes
                    for arg in (
                        "--link",
                        f"{node.name}=127.0.0.1:{self.main_wan_ports[node.name]}"
                        f"=127.0.0.1:{node.port}",
                    )
                ],
                "--control",
                f"127.0.0.1:{self.wan_control_port}",
                "--delay-ms",
                str(self.config.wan_delay_ms),
            ],
            dict(os.environ),
            self.base_dir / "wan.log",
        )
        self.wan_process.start()
        self.wan.wait_ready(timeout_s=20)

    def start_gateway(
        self,
        site: str,
        *,
        secondary: bool,
        run_processor: bool = False,
        port: int | None = None,
        settings: dict[str, Any] | None = None,
    ) -> str:
        """A gateway process for ``site``; ``settings`` override the stack's for it."""
        port = port or free_port()
        overrides = {**self.settings_overrides(site, secondary=secondary), **(settings or {})}
        overrides["run_processor"] = run_processor
        gateway = ManagedProcess(
            f"gateway-{site}",
            [sys.executable, "-m", "ccat_api", "serve", "--host", "127.0.0.1", "--port", str(port)],
            self.env_for(overrides),
            self.base_dir / f"gateway-{site}.log",
        )
        gateway.start()
        self.gateways[site] = gateway
        self.gateway_ports[site] = port
        if not wait_port(port, 30):
            raise RuntimeError(f"gateway {site} did not start; see {gateway.log_file}")
        return self.gateway_url(site)

    def start_processor(
        self,
        site: str | None = None,
        *,
        burst: bool = False,
        env: dict[str, str] | None = None,
        metrics_port: int | None = None,
    ) -> ManagedProcess:
        argv = [sys.executable, "-m", "ccat_api", "process"]
        if burst:
            argv.append("--burst")
        if metrics_port is not None:
            argv += ["--metrics-port", str(metrics_port)]
        process = ManagedProcess(
            f"processor-{site or self.config.secondary_site}",
            argv,
            {**self.env_for(self.settings_overrides(site)), **(env or {})},
            self.base_dir / f"processor-{site or self.config.secondary_site}.log",
        )
        process.start()
        if site is None:
            self.processor = process
            self.processor_metrics_port = metrics_port
        return process

    def down(self) -> None:
        for process in [*self.gateways.values(), self.processor, self.wan_process]:
            if process is not None:
                process.stop()
        self.gateways.clear()
        self.processor = None
        self.processor_metrics_port = None
        self.wan_process = None
        if self.redis_set is not None:
            self.redis_set.stop()
        else:
            self.redis.stop()
        for cluster in (self.replica, *self.main_nodes):
            if (cluster.data_dir / "postmaster.pid").exists():
                cluster.stop("immediate")
        if not self.config.keep_files:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        self.started = False

    def describe(self) -> dict[str, Any]:
        return {
            "base_dir": str(self.base_dir),
            "main_db": self.main_db.url(),
            **(
                {"main_standby": self.main_standby.url(), "main_db_multi_host": self.main_url}
                if self.main_standby is not None
                else {}
            ),
            "main_db_via_wan": self.main_url_via_wan,
            "replica": self.replica.url(),
            "redis": self.redis.url,
            **(
                {"redis_sentinels": self.redis_set.sentinel_addresses}
                if self.redis_set is not None
                else {}
            ),
            "wan_control": f"http://127.0.0.1:{self.wan_control_port}",
            "gateways": {site: self.gateway_url(site) for site in self.gateway_ports},
            **(
                {"processor_metrics": f"http://127.0.0.1:{self.processor_metrics_port}/metrics"}
                if self.processor_metrics_port is not None
                else {}
            ),
            "pid": os.getpid(),
        }

    def write_state(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.describe(), indent=2))

    def fail_over_main(self, *, rebuild: bool = True) -> None:
        """kill -9 main's primary and promote its standby, as Patroni does after its TTL;
        then (``rebuild``) the dead node comes back as the new primary's standby, from a
        fresh base backup, so main can fail over again."""
        if self.main_standby is None:
            raise RuntimeError("this stack runs main without a standby (main_standby=False)")
        dead, promoted = self.main_db, self.main_standby
        dead.kill()
        promoted.promote()
        self.main_db, self.main_standby = promoted, dead
        if rebuild:
            self.rebuild_main_standby()

    def rebuild_main_standby(self) -> None:
        standby = self.main_standby
        assert standby is not None
        standby.stop("immediate")
        shutil.rmtree(standby.data_dir, ignore_errors=True)
        standby.init_replica_of(self.main_db)
        standby.start()
        standby.create_slot(self.replica.slot_name)

    def wait_main_standby_caught_up(self, timeout_s: float = 30.0) -> None:
        """Until main's standby has flushed everything main has flushed now."""
        assert self.main_standby is not None
        target = self.main_db.psql("SELECT pg_current_wal_flush_lsn() - '0/0'::pg_lsn")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            flushed = self.main_standby.psql("SELECT pg_last_wal_receive_lsn() - '0/0'::pg_lsn")
            if flushed and float(flushed) >= float(target):
                return
            time.sleep(0.05)
        raise TimeoutError("main's standby did not catch up")

    def wait_replica_caught_up(self, timeout_s: float = 30.0) -> None:
        """Until the replica has replayed everything main has flushed now."""
        target = self.main_db.psql("SELECT pg_current_wal_flush_lsn() - '0/0'::pg_lsn")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            replayed = self.replica.psql("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn")
            if replayed and float(replayed) >= float(target):
                return
            time.sleep(0.05)
        raise TimeoutError("replica did not catch up")
