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
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccat_api.devstack.main_cluster import MainCluster
from ccat_api.devstack.postgres import PostgresCluster
from ccat_api.devstack.processes import ManagedProcess
from ccat_api.devstack.sites import SecondarySite
from ccat_api.devstack.system import ensure_installed, free_port, wait_port
from ccat_api.devstack.tls import CertificateAuthority
from ccat_api.devstack.wan import WanControl

# ManagedProcess lives in processes.py; tests and benchmarks import it from here too.
__all__ = ["MAIN_SITE", "SECONDARY_SITE", "ManagedProcess", "Stack", "StackConfig"]

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
    # Every secondary site, each with its own replica, Redis, WAN link, gateway and processor;
    # empty: just ``secondary_site`` (the demo's one site).
    sites: tuple[str, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)
    # 0: one Redis (the demo, small sites). N: a primary, N replicas and three Sentinels, and
    # critical writes wait for a replica (Redis WAIT) before they are answered.
    redis_replicas: int = 0
    # Main as a primary and a streaming standby (asynchronous, like a Patroni pair without
    # synchronous_mode): gateways and the processor reach it through a multi-host address
    # and follow a promotion (``fail_over_main``).
    main_standby: bool = False
    keep_files: bool = False

    @property
    def site_names(self) -> tuple[str, ...]:
        return self.sites or (self.secondary_site,)


class Stack:
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.base_dir = self.config.base_dir or Path(tempfile.mkdtemp(prefix="ccat-stack-"))
        # Signs main's certificate; every site checks it (sslmode=verify-full).
        self.ca = CertificateAuthority(self.base_dir / "tls")
        self.main = MainCluster(self.base_dir, self.ca, standby=self.config.main_standby)
        self.sites = {
            name: SecondarySite(
                name,
                self.base_dir,
                [node.name for node in self.main_nodes],
                first=n == 0,
                redis_replicas=self.config.redis_replicas,
            )
            for n, name in enumerate(self.config.site_names)
        }
        # The first site under the names the stack always had, for one-site tools and tests.
        first = self.first_site
        self.replica = first.replica
        self.redis_set = first.redis_set
        self.redis = first.redis
        self.main_wan_ports = first.wan_ports
        self.wan_port = first.wan_ports[self.main_db.name]
        self.wan_control_port = first.wan_control_port
        self.gateways: dict[str, ManagedProcess] = {}
        self.gateway_ports: dict[str, int] = {}
        self.processor: ManagedProcess | None = None
        # Processors of the sites after the first (the first's is ``processor``).
        self.processors: dict[str, ManagedProcess] = {}
        # The stack's own processor serves its replay histograms here (Prometheus text).
        self.processor_metrics_port: int | None = None
        self.started = False
        # Both sites' gateways sign and verify session tokens with the same secret.
        self.session_secret = secrets.token_urlsafe(32)

    # --- addresses -------------------------------------------------------------------------

    @property
    def first_site(self) -> SecondarySite:
        return next(iter(self.sites.values()))

    def site(self, name: str | None = None) -> SecondarySite:
        """A secondary site by name; any other name (a test's own) shares the first's
        services under its own key prefix."""
        return self.sites.get(name or "", self.first_site)

    @property
    def wan(self) -> WanControl:
        return self.first_site.wan

    @property
    def wan_process(self) -> ManagedProcess | None:
        return self.first_site.wan_process

    @property
    def main_db(self) -> PostgresCluster:
        """Main's primary (after fail_over_main, the promoted standby)."""
        return self.main.primary

    @property
    def main_standby(self) -> PostgresCluster | None:
        return self.main.standby

    @property
    def main_nodes(self) -> list[PostgresCluster]:
        return self.main.nodes

    @property
    def main_url_via_wan(self) -> str:
        return self.first_site.main_url_via_wan(self.main)

    @property
    def main_url(self) -> str:
        """Main for the main site's gateway (no WAN): every node when it has a standby."""
        return self.main.url

    def gateway_url(self, site: str) -> str:
        return f"http://127.0.0.1:{self.gateway_ports[site]}"

    def settings_overrides(
        self, site: str | None = None, *, secondary: bool = True, component: str = "gateway"
    ) -> dict[str, Any]:
        """Settings for a gateway or processor (``component``, the Redis user it logs in as)
        of this stack (tests pass them to Settings)."""
        if not secondary:
            return {
                "site_name": site or MAIN_SITE,
                "site_type": "main",
                "main_db_url": self.main_url,
                "local_db_url": "",
                "redis_url": "",
                "session_secret": self.session_secret,
            }
        services = self.site(site)
        return {
            "session_secret": self.session_secret,
            "site_name": site or self.config.secondary_site,
            "site_type": "secondary",
            "main_db_url": services.main_url_via_wan(self.main),
            "local_db_url": services.replica.url(),
            "redis_url": services.redis.url_for(component),
            **(
                {"redis_sentinels": services.redis_set.sentinel_addresses}
                if services.redis_set is not None
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
        say("certificate authority (main's TLS certificate)")
        self.ca.create()
        say("main PostgreSQL (primary, wal_level=replica, TLS)")
        self.main.start_primary()
        say("schema migrations and seed data on main")
        self._migrate_and_seed()
        if self.main_standby is not None:
            say("main's streaming standby (asynchronous)")
            self.main.start_standby()
        for site in self.sites.values():
            say(f"{site.name}: WAN link ({2 * self.config.wan_delay_ms} ms round trip)")
            site.start_wan(self.main_nodes, self.config.wan_delay_ms)
            say(f"{site.name}: streaming replica (pg_basebackup, hot standby)")
            site.start_replica(self.main_db, self.main_nodes, via_wan=self.config.replica_via_wan)
            if self.main_standby is not None:
                # The site's slot on the standby too, so the replica streams on after a
                # promotion.
                self.main_standby.create_slot(site.replica.slot_name)
            if site.redis_set is not None:
                say(
                    f"{site.name}: Redis primary, {self.config.redis_replicas} replica(s) and"
                    " three Sentinels (AOF, appendfsync always, min-replicas-to-write 1)"
                )
            else:
                say(f"{site.name}: Redis (AOF, appendfsync always)")
            site.start_redis()
        self.started = True
        if self.config.gateways:
            say("gateways")
            self.start_gateway(MAIN_SITE, secondary=False)
            for name in self.sites:
                self.start_gateway(
                    name, secondary=True, run_processor=self.config.processor == "gateway"
                )
        if self.config.processor == "separate":
            say("processor and LSN tracker")
            self.start_processor(metrics_port=free_port())
            for name in list(self.sites)[1:]:
                self.start_processor(name)

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
            {**self.env_for(self.settings_overrides(site, component="processor")), **(env or {})},
            self.base_dir / f"processor-{site or self.config.secondary_site}.log",
        )
        process.start()
        if site is None:
            self.processor = process
            self.processor_metrics_port = metrics_port
        elif site in self.sites and site != self.config.site_names[0]:
            self.processors[site] = process
        return process

    def down(self) -> None:
        for process in [*self.gateways.values(), self.processor, *self.processors.values()]:
            if process is not None:
                process.stop()
        self.gateways.clear()
        self.processor = None
        self.processors.clear()
        self.processor_metrics_port = None
        for site in self.sites.values():
            site.stop()
        self.main.stop()
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
            # The first site's services at the top level too, as one-site tools read them.
            **self.first_site.describe(),
            "sites": {name: site.describe() for name, site in self.sites.items()},
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
        """kill -9 main's primary and promote its standby; see MainCluster.fail_over."""
        self.main.fail_over([site.replica.slot_name for site in self.sites.values()],
                            rebuild=rebuild)  # fmt: skip

    def wait_main_standby_caught_up(self, timeout_s: float = 30.0) -> None:
        self.main.wait_standby_caught_up(timeout_s)

    def wait_replica_caught_up(self, timeout_s: float = 30.0, *, site: str | None = None) -> None:
        """Until the (first, or ``site``'s) replica has replayed everything main has flushed."""
        replica = self.site(site).replica
        target = self.main_db.psql("SELECT pg_current_wal_flush_lsn() - '0/0'::pg_lsn")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            replayed = replica.psql("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn")
            if replayed and float(replayed) >= float(target):
                return
            time.sleep(0.05)
        raise TimeoutError(f"replica {replica.name} did not catch up")
