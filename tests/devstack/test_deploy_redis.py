"""The Redis files an operator deploys load in the real servers and say what the docs say:
``deploy/redis/redis.conf`` in ``redis-server`` (durability, no eviction, a primary that
refuses writes without a replica) and ``sentinel.conf`` in ``redis-sentinel`` (it finds the
primary under the service name the gateway asks for). The failover tests start their
Sentinel set from the same files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import redis

from ccat_api.devstack.redis_sentinel import DEPLOY_DIR, SERVICE, SentinelServer
from ccat_api.devstack.system import free_port, wait_port


def test_redis_conf_loads_and_asks_for_fsync_always_noeviction_and_a_replica(
    tmp_path: Path,
) -> None:
    port = free_port()
    # Only where it listens and keeps files differ from the deployed file.
    server = subprocess.Popen(
        ["redis-server", str(DEPLOY_DIR / "redis.conf"), "--port", str(port),
         "--bind", "127.0.0.1", "--dir", str(tmp_path), "--logfile", str(tmp_path / "log")],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_port(port, 20), (tmp_path / "log").read_text()
        client = redis.Redis(port=port, decode_responses=True)
        config = client.config_get("*")
        assert config["appendonly"] == "yes"
        assert config["appendfsync"] == "always"
        assert config["maxmemory-policy"] == "noeviction"
        assert config["save"] == ""
        assert config["min-replicas-to-write"] == "1"
        # No replica: the primary takes no write at all.
        with pytest.raises(redis.ResponseError, match="NOREPLICAS"):
            client.set("k", "v")
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_sentinel_conf_loads_and_names_the_primary_under_the_gateways_service_name(
    tmp_path: Path,
) -> None:
    primary_port = free_port()
    primary = subprocess.Popen(
        ["redis-server", "--port", str(primary_port), "--bind", "127.0.0.1", "--save", "",
         "--dir", str(tmp_path)],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    sentinel = SentinelServer(tmp_path / "sentinel", free_port(), primary_port)
    try:
        assert wait_port(primary_port, 20)
        sentinel.start()
        client = redis.Redis(port=sentinel.port, decode_responses=True)
        assert client.sentinel_get_master_addr_by_name(SERVICE) == ("127.0.0.1", primary_port)
        client.close()
    finally:
        sentinel.stop()
        primary.terminate()
        primary.wait(timeout=10)
