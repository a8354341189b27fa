"""Throwaway PostgreSQL clusters: a primary and hot-standby replicas made with pg_basebackup.

Each cluster lives in its own directory on a free port, listens on loopback only with trust
authentication, and is driven with pg_ctl as the unprivileged PostgreSQL user.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from ccat_api.devstack.system import as_pg_user, find_pg_bin_dir, hand_over

SUPERUSER = "postgres"
APP_USER = "ccat"
APP_DB = "ccat"

_PRIMARY_CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
max_connections = 200
shared_buffers = 128MB
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 256MB
hot_standby = on
hot_standby_feedback = on
synchronous_commit = on
# The WAL sender's wakeup is driven by commits; keep the status interval short so the
# replica's replay position is reported promptly.
wal_receiver_status_interval = 1s
wal_sender_timeout = 60s
log_min_messages = warning
log_min_error_statement = panic
log_line_prefix = '%m [%p] {name} '
"""

_REPLICA_CONF = """
port = {port}
unix_socket_directories = '{socket_dir}'
primary_conninfo = '{conninfo}'
primary_slot_name = '{slot}'
hot_standby = on
hot_standby_feedback = on
# After a WAN outage, reconnect within a second instead of the default five.
wal_retrieve_retry_interval = 1s
wal_receiver_timeout = 30s
max_standby_streaming_delay = 30s
log_line_prefix = '%m [%p] {name} '
"""


@dataclass
class PostgresCluster:
    name: str
    data_dir: Path
    port: int

    @property
    def bin_dir(self) -> Path:
        found = find_pg_bin_dir()
        if found is None:
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        return found

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir.parent

    def url(self, *, user: str = APP_USER, database: str = APP_DB, driver: str = "asyncpg") -> str:
        scheme = "postgresql+asyncpg" if driver == "asyncpg" else "postgresql"
        return f"{scheme}://{user}@127.0.0.1:{self.port}/{database}"

    def dsn(self, *, user: str = APP_USER, database: str = APP_DB) -> str:
        """Plain libpq/asyncpg DSN (no SQLAlchemy driver suffix)."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            as_pg_user([str(self.bin_dir / tool), *args]),
            check=False,
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{tool} failed for {self.name} ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def init_primary(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        hand_over(self.data_dir.parent)
        self._pg(
            "initdb",
            "-D", str(self.data_dir),
            "-U", SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )  # fmt: skip
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                _PRIMARY_CONF.format(port=self.port, socket_dir=self.socket_dir, name=self.name)
            )
        with (self.data_dir / "pg_hba.conf").open("w") as hba:
            hba.write(
                "local all all trust\n"
                "host all all 127.0.0.1/32 trust\n"
                "host replication all 127.0.0.1/32 trust\n"
            )

    def create_app_database(self) -> None:
        self.psql(f"CREATE ROLE {APP_USER} LOGIN", database="postgres")
        # pg_monitor lets the gateway read the WAL receiver's timings on the replica
        # (pg_stat_wal_receiver hides them from other roles); it grants no data access.
        self.psql(f"GRANT pg_monitor TO {APP_USER}", database="postgres")
        self.psql(f"CREATE DATABASE {APP_DB} OWNER {APP_USER}", database="postgres")

    def init_replica_of(
        self,
        primary: PostgresCluster,
        *,
        upstream_host: str = "127.0.0.1",
        upstream_port: int | None = None,
    ) -> None:
        """Base backup of ``primary`` that then streams from ``upstream`` (e.g. a WAN link)."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        hand_over(self.data_dir.parent)
        slot = f"{self.name.replace('-', '_')}_slot"
        # A replication slot keeps main's WAL for this replica through WAN outages of any length.
        self._pg(
            "pg_basebackup",
            "-h", "127.0.0.1",
            "-p", str(primary.port),
            "-U", SUPERUSER,
            "-D", str(self.data_dir),
            "-X", "stream",
            "-C", "-S", slot,
            "-R",
            "--checkpoint=fast",
        )  # fmt: skip
        with (self.data_dir / "postgresql.auto.conf").open("a") as conf:
            conf.write(
                _REPLICA_CONF.format(
                    port=self.port,
                    socket_dir=self.socket_dir,
                    conninfo=(
                        f"host={upstream_host} port={upstream_port or primary.port}"
                        f" user={SUPERUSER} application_name={self.name} connect_timeout=5"
                        " keepalives_idle=5 keepalives_interval=2 keepalives_count=3"
                    ),
                    name=self.name,
                    slot=slot,
                )
            )

    def start(self, timeout_s: int = 60) -> None:
        self._pg(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file),
            "-w", "-t", str(timeout_s), "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def is_running(self) -> bool:
        return self._pg("pg_ctl", "-D", str(self.data_dir), "status", check=False).returncode == 0

    def psql(self, sql: str, *, database: str = APP_DB, user: str = SUPERUSER) -> str:
        result = self._pg(
            "psql",
            "-h", "127.0.0.1",
            "-p", str(self.port),
            "-U", user,
            "-d", database,
            "-v", "ON_ERROR_STOP=1",
            "-At",
            "-c", sql,
        )  # fmt: skip
        return result.stdout.strip()
