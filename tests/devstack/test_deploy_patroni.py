"""deploy/patroni/patroni.yml as an operator runs it: etcd (Debian's etcd-server) and two
Patroni nodes (Debian's patroni) from the shipped file, each given only what its environment
file would give it. Patroni validates the file, bootstraps a primary and a standby, keeps the
sites' permanent slot on both, and after the primary's machine dies promotes the standby; the
multi-host address the gateways use then reaches the new primary.

Addresses are on 127.0.0.2: Patroni refuses a connect address of 127.0.0.1 or localhost.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ccat_api.devstack.system import as_pg_user, free_port, hand_over, wait_port
from ccat_api.devstack.tls import CertificateAuthority
from tests.support import eventually, fetchval

PATRONI_FILE = Path(__file__).resolve().parents[2] / "deploy" / "patroni" / "patroni.yml"
HOST = "127.0.0.2"
SECRETS = {
    "PATRONI_SUPERUSER_PASSWORD": "superuser-secret",
    "PATRONI_REPLICATION_PASSWORD": "replication-secret",
    "PATRONI_REWIND_PASSWORD": "rewind-secret",
}
# The shipped ttl (30 s) and loop_wait (10 s), plus the standby's own loop and start.
FAILOVER_TIMEOUT_S = 120.0


def binary(name: str) -> str:
    found = shutil.which(name)
    # Not a skip: CI without them would pass while starting nothing.
    assert found, f"{name} is missing: `make test-deps` installs Debian's patroni and etcd-server"
    return found


@dataclass
class Node:
    name: str
    pg_port: int
    api_port: int
    base: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.base / self.name / "data"

    def environment(self, etcd_port: int) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("PATRONI_")},
            **SECRETS,
            "PATRONI_NAME": self.name,
            "PATRONI_RESTAPI_LISTEN": f"{HOST}:{self.api_port}",
            "PATRONI_RESTAPI_CONNECT_ADDRESS": f"{HOST}:{self.api_port}",
            "PATRONI_POSTGRESQL_LISTEN": f"{HOST}:{self.pg_port}",
            "PATRONI_POSTGRESQL_CONNECT_ADDRESS": f"{HOST}:{self.pg_port}",
            "PATRONI_POSTGRESQL_DATA_DIR": str(self.data_dir),
            "PATRONI_POSTGRESQL_PGPASS": str(self.base / self.name / "pgpass"),
            "PATRONI_ETCD3_HOSTS": f"{HOST}:{etcd_port}",
        }

    def start(self, etcd_port: int) -> None:
        (self.base / self.name).mkdir(parents=True, exist_ok=True)
        self._install_tls()
        hand_over(self.base / self.name)
        log = (self.base / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(
            as_pg_user(["env", *_env_args(self.environment(etcd_port)), binary("patroni"),
                        str(PATRONI_FILE)]),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.environment(etcd_port), start_new_session=True,
        )  # fmt: skip
        log.close()

    def _install_tls(self) -> None:
        """What an operator puts beside the data directory: the node's certificate and key
        and the CA (``ssl_*_file`` in the shipped file)."""
        ca = CertificateAuthority(self.base / "ca").create("ccat main CA")
        issued = ca.issue(self.name, (f"IP:{HOST}",))
        tls = self.base / self.name / "tls"
        tls.mkdir(exist_ok=True)
        shutil.copy(issued.cert_file, tls / "server.crt")
        shutil.copy(issued.key_file, tls / "server.key")
        (tls / "server.key").chmod(0o600)
        shutil.copy(ca.cert_file, tls / "root.crt")

    def role(self) -> str | None:
        try:
            answer = httpx.get(f"http://{HOST}:{self.api_port}/patroni", timeout=2)
        except httpx.HTTPError:
            return None
        return str(answer.json().get("role")) if answer.status_code == 200 else None

    def die(self) -> None:
        """The machine dies: Patroni and its PostgreSQL, kill -9, no goodbye to etcd."""
        pid_file = self.data_dir / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        if self.process is not None:
            # runuser's child: kill the whole group the test gave it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        if postmaster is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGKILL)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.die()


def _env_args(env: dict[str, str]) -> list[str]:
    # runuser resets the environment; env(1) puts back what Patroni must see.
    return [f"{k}={v}" for k, v in env.items() if k.startswith("PATRONI_") or k == "PATH"]


def wait_for(what: str, probe: object, timeout_s: float) -> None:
    assert callable(probe)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout_s:.0f} s")


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[list[Node], int]]:
    base = Path(tempfile.mkdtemp(prefix="ccat-patroni-"))
    os.chmod(base, 0o755)  # noqa: S103 (the postgres user must reach its directories)
    etcd_port, peer_port = free_port(), free_port()
    etcd_log = (base / "etcd.log").open("ab")
    etcd = subprocess.Popen(
        [binary("etcd"), "--name", "etcd-1", "--data-dir", str(base / "etcd"),
         "--listen-client-urls", f"http://{HOST}:{etcd_port}",
         "--advertise-client-urls", f"http://{HOST}:{etcd_port}",
         "--listen-peer-urls", f"http://{HOST}:{peer_port}",
         "--initial-advertise-peer-urls", f"http://{HOST}:{peer_port}",
         "--initial-cluster", f"etcd-1=http://{HOST}:{peer_port}"],
        stdout=etcd_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    etcd_log.close()
    nodes = [Node(f"main-{n}", free_port(), free_port(), base) for n in (1, 2)]
    try:
        assert wait_port(etcd_port, 20, host=HOST), "etcd did not start"
        nodes[0].start(etcd_port)
        wait_for("a leader", lambda: nodes[0].role() in ("master", "primary"), 90)
        nodes[1].start(etcd_port)
        wait_for("a streaming standby", lambda: nodes[1].role() == "replica", 90)
        yield nodes, etcd_port
    finally:
        for node in nodes:
            node.stop()
        etcd.terminate()
        etcd.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)


def multi_host_dsn(nodes: list[Node]) -> str:
    hosts = ",".join(f"{HOST}:{node.pg_port}" for node in nodes)
    return (
        f"postgresql://postgres:{SECRETS['PATRONI_SUPERUSER_PASSWORD']}@{hosts}/postgres"
        "?target_session_attrs=read-write"
    )


def test_patroni_validates_the_shipped_file_with_an_operators_environment() -> None:
    etcd_port = free_port()
    node = Node("main-v", free_port(), free_port(), Path(tempfile.mkdtemp()))
    # The validator checks etcd is reachable: one is started for it.
    with tempfile.TemporaryDirectory() as etcd_dir:
        peer = free_port()
        etcd = subprocess.Popen(
            [binary("etcd"), "--data-dir", etcd_dir,
             "--listen-client-urls", f"http://{HOST}:{etcd_port}",
             "--advertise-client-urls", f"http://{HOST}:{etcd_port}",
             "--listen-peer-urls", f"http://{HOST}:{peer}",
             "--initial-advertise-peer-urls", f"http://{HOST}:{peer}",
             "--initial-cluster", f"default=http://{HOST}:{peer}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            assert wait_port(etcd_port, 20, host=HOST)
            result = subprocess.run(
                [binary("patroni"), "--validate-config", str(PATRONI_FILE)],
                env=node.environment(etcd_port), capture_output=True, text=True, check=False,
            )  # fmt: skip
        finally:
            etcd.terminate()
            etcd.wait(timeout=10)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_a_promotion_keeps_the_sites_slot_and_is_reached_by_the_multi_host_address(
    cluster: tuple[list[Node], int],
) -> None:
    nodes, _ = cluster
    primary, standby = nodes
    slots = "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'observatory_slot'"
    dsn = multi_host_dsn(nodes)
    # Patroni makes the site's slot on the leader within a loop or two.
    await eventually(lambda: _slot_on(dsn, slots), timeout_s=60, interval_s=1)
    await fetchval(dsn, "CREATE TABLE IF NOT EXISTS before_failover (n int)")
    await fetchval(dsn, "INSERT INTO before_failover VALUES (1)")
    # Asynchronous replication: the standby has the row once it has replayed past it.
    caught_up = (
        "SELECT count(*) FROM pg_stat_replication WHERE application_name = $1"
        " AND state = 'streaming' AND replay_lsn >= pg_current_wal_lsn()"
    )

    async def standby_has_it() -> bool:
        return int(await fetchval(dsn, caught_up, standby.name)) == 1

    await eventually(standby_has_it, timeout_s=60, interval_s=0.5)

    primary.die()
    wait_for(
        "the standby promoted",
        lambda: standby.role() in ("master", "primary"),
        FAILOVER_TIMEOUT_S,
    )
    # The multi-host address the gateways use now reaches the promoted node.
    port = await fetchval(dsn, "SELECT inet_server_port()")
    assert port == standby.pg_port
    assert await fetchval(dsn, "SELECT count(*) FROM before_failover") == 1
    # A site reaches the promoted node over TLS it verified against main's CA.
    verified = f"{dsn}&sslmode=verify-full&sslrootcert={primary.base / 'ca' / 'ca.crt'}"
    ssl_in_use = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    assert await fetchval(verified, ssl_in_use) is True
    assert await fetchval(dsn, "SELECT pg_is_in_recovery()") is False
    # Patroni 3.0 makes a permanent physical slot on whichever node leads (3.1 and later also
    # keep it on standbys); the promoted node has it, so the site's replica streams on.
    await eventually(lambda: _slot_on(dsn, slots), timeout_s=60, interval_s=1)


async def _slot_on(dsn: str, sql: str) -> bool:
    return int(await fetchval(dsn, sql)) == 1
