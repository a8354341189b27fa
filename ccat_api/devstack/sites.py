"""A secondary site of the local stack: its own streaming replica of main (its own slot), its
own Redis (or Sentinel set) and its own WAN link to every main node, steered on its own.

The stack makes one per name in ``StackConfig.sites``; the first keeps the names the stack
always had (``replica``, ``redis``), so one-site tools and tests read it as before.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ccat_api.devstack.main_cluster import MainCluster
from ccat_api.devstack.postgres import PostgresCluster
from ccat_api.devstack.processes import ManagedProcess
from ccat_api.devstack.redis_sentinel import RedisSentinelSet
from ccat_api.devstack.redis_server import RedisServer
from ccat_api.devstack.system import free_port
from ccat_api.devstack.wan import WanControl


class SecondarySite:
    def __init__(
        self,
        name: str,
        base_dir: Path,
        main_node_names: list[str],
        *,
        first: bool,
        redis_replicas: int,
    ) -> None:
        self.name = name
        self.base_dir = base_dir
        suffix = "" if first else f"-{name}"
        self.replica = PostgresCluster(
            f"replica{suffix}", base_dir / f"replica{suffix}" / "data", free_port()
        )
        self.redis_set: RedisSentinelSet | None = None
        self.redis: RedisServer
        if redis_replicas:
            self.redis_set = RedisSentinelSet(base_dir / f"redis{suffix}", replicas=redis_replicas)
            # The first primary; after a failover, redis_set.primary_port() says which it is.
            self.redis = self.redis_set.members[0]
        else:
            self.redis = RedisServer(base_dir / f"redis{suffix}", free_port())
        # This site's WAN link (listen port) to each main node, by node name.
        self.wan_ports = {node: free_port() for node in main_node_names}
        self.wan_control_port = free_port()
        self.wan_process: ManagedProcess | None = None
        self._log_suffix = suffix

    @property
    def wan(self) -> WanControl:
        return WanControl(f"http://127.0.0.1:{self.wan_control_port}")

    def start_wan(self, main_nodes: list[PostgresCluster], delay_ms: int) -> None:
        links = [
            arg
            for node in main_nodes
            for arg in (
                "--link",
                f"{node.name}=127.0.0.1:{self.wan_ports[node.name]}=127.0.0.1:{node.port}",
            )
        ]
        self.wan_process = ManagedProcess(
            f"wan{self._log_suffix}",
            [
                sys.executable, "-m", "ccat_api.devstack.wan", *links,
                "--control", f"127.0.0.1:{self.wan_control_port}",
                "--delay-ms", str(delay_ms),
            ],
            dict(os.environ),
            self.base_dir / f"wan{self._log_suffix}.log",
        )  # fmt: skip
        self.wan_process.start()
        self.wan.wait_ready(timeout_s=20)

    def start_replica(self, main: PostgresCluster, main_nodes: list[PostgresCluster], *,
                      via_wan: bool) -> None:  # fmt: skip
        self.replica.init_replica_of(
            main,
            upstreams=[
                ("127.0.0.1", self.wan_ports[node.name] if via_wan else node.port)
                for node in main_nodes
            ],
        )
        self.replica.start()

    def start_redis(self) -> None:
        if self.redis_set is not None:
            self.redis_set.start()
        else:
            self.redis.start()

    def main_url_via_wan(self, main: MainCluster) -> str:
        """Main through this site's link (one host, or every main node's link), over TLS
        that checks main's certificate names the address dialled (verify-full)."""
        ports = sorted(self.wan_ports.values())
        if len(ports) == 1:
            return f"postgresql+asyncpg://ccat@127.0.0.1:{ports[0]}/ccat?{main.tls_query()}"
        return main.multi_host_url(ports, tls=True)

    def stop(self) -> None:
        if self.wan_process is not None:
            self.wan_process.stop()
            self.wan_process = None
        if self.redis_set is not None:
            self.redis_set.stop()
        else:
            self.redis.stop()
        if (self.replica.data_dir / "postmaster.pid").exists():
            self.replica.stop("immediate")

    def describe(self) -> dict[str, Any]:
        return {
            "replica": self.replica.url(),
            "redis": self.redis.url,
            **(
                {"redis_sentinels": self.redis_set.sentinel_addresses}
                if self.redis_set is not None
                else {}
            ),
            "wan_control": f"http://127.0.0.1:{self.wan_control_port}",
        }
