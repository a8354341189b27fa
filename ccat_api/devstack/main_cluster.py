"""Main's PostgreSQL in the local stack: a primary serving TLS with a certificate from the
stack's CA, and (``main_standby``) an asynchronous streaming standby, failed over the way
Patroni does it. Gateways and site processors reach it by one URL, every node at once when
there is a standby (``target_session_attrs=read-write`` finds the primary).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from ccat_api.devstack.postgres import PostgresCluster
from ccat_api.devstack.system import free_port
from ccat_api.devstack.tls import CertificateAuthority


class MainCluster:
    def __init__(self, base_dir: Path, ca: CertificateAuthority, *, standby: bool) -> None:
        self.ca = ca
        # ``primary`` is main's primary, ``standby`` its standby: fail_over swaps them.
        self.primary = PostgresCluster("main-db", base_dir / "main-db" / "data", free_port(), ca=ca)
        self.standby: PostgresCluster | None = None
        if standby:
            self.standby = PostgresCluster(
                "main-standby", base_dir / "main-standby" / "data", free_port(), ca=ca
            )
            # One replication role for the pair: whichever is primary has it.
            self.standby.replication_password = self.primary.replication_password

    @property
    def nodes(self) -> list[PostgresCluster]:
        return [self.primary] + ([self.standby] if self.standby is not None else [])

    def tls_query(self) -> str:
        """What a site adds to main's URL: verify main's certificate against the stack's CA."""
        return f"sslmode=verify-full&sslrootcert={self.ca.cert_file}"

    def multi_host_url(self, ports: list[int], *, tls: bool = False) -> str:
        # SQLAlchemy's form for asyncpg; runtime.plain_dsn turns it into libpq's for asyncpg.
        hosts = "&".join(f"host=127.0.0.1:{port}" for port in ports)
        query = f"{hosts}&target_session_attrs=read-write" + (f"&{self.tls_query()}" if tls else "")
        return f"postgresql+asyncpg://ccat@/ccat?{query}"

    @property
    def url(self) -> str:
        """Main for the main site's gateway (no WAN): every node when it has a standby."""
        if self.standby is None:
            return self.primary.url()
        return self.multi_host_url(sorted(node.port for node in self.nodes))

    def start_primary(self) -> None:
        self.primary.init_primary()
        self.primary.start()
        self.primary.create_app_database()

    def start_standby(self) -> None:
        if self.standby is not None:
            self.standby.init_replica_of(self.primary)
            self.standby.start()

    def stop(self) -> None:
        for cluster in self.nodes:
            if (cluster.data_dir / "postmaster.pid").exists():
                cluster.stop("immediate")

    def fail_over(self, slots: list[str], *, rebuild: bool = True) -> None:
        """kill -9 main's primary and promote its standby, as Patroni does after its TTL;
        then (``rebuild``) the dead node comes back as the new primary's standby, from a
        fresh base backup, so main can fail over again."""
        if self.standby is None:
            raise RuntimeError("this stack runs main without a standby (main_standby=False)")
        dead, promoted = self.primary, self.standby
        dead.kill()
        promoted.promote()
        self.primary, self.standby = promoted, dead
        if rebuild:
            self.rebuild_standby(slots)

    def rebuild_standby(self, slots: list[str]) -> None:
        """A fresh standby of the primary, holding ``slots`` (the sites') for a promotion."""
        standby = self.standby
        assert standby is not None
        standby.stop("immediate")
        shutil.rmtree(standby.data_dir, ignore_errors=True)
        standby.init_replica_of(self.primary)
        standby.start()
        for slot in slots:
            standby.create_slot(slot)

    def wait_standby_caught_up(self, timeout_s: float = 30.0) -> None:
        """Until main's standby has flushed everything main has flushed now."""
        assert self.standby is not None
        target = self.primary.psql("SELECT pg_current_wal_flush_lsn() - '0/0'::pg_lsn")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            flushed = self.standby.psql("SELECT pg_last_wal_receive_lsn() - '0/0'::pg_lsn")
            if flushed and float(flushed) >= float(target):
                return
            time.sleep(0.05)
        raise TimeoutError("main's standby did not catch up")
