"""Throwaway PostgreSQL clusters: a primary and hot-standby replicas made with pg_basebackup,
configured from the files an operator deploys (``deploy/postgresql``), so every run of the
stack proves they load.

Each cluster lives in its own directory on a free port, listens on loopback only, and is
driven with pg_ctl as the unprivileged PostgreSQL user. The deployed files are copied into
the data directory and included as shipped; after them come only what one machine must
change: where the server listens, its socket directory and how it logs. The superuser and
the application role connect over loopback without a password; a replica streams as the
``replicator`` role with a password from a passfile, through the deployed ``hostssl``
pg_hba.conf line, over TLS it verifies (``sslmode=verify-full`` against the stack's CA).
A primary serves TLS with a certificate from that CA (``server.crt``, ``server.key`` and
``root.crt`` in its data directory, where primary.conf names them); a base backup carries
them to its replicas.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ccat_api.devstack.system import as_pg_user, find_pg_bin_dir, hand_over
from ccat_api.devstack.tls import CertificateAuthority

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "postgresql"
SUPERUSER = "postgres"
APP_USER = "ccat"
APP_DB = "ccat"
REPLICATION_USER = "replicator"

# After the deployed file, only what a cluster on a shared machine must change.
_ONE_MACHINE_CONF = """
# One machine, several clusters: loopback, a port and a socket directory of its own.
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
log_min_messages = warning
log_min_error_statement = panic
log_line_prefix = '%m [%p] {name} '
"""

# Before the deployed lines: the superuser (administration, psql) and the application role
# reach any database over loopback without a password, but over TCP only with TLS (hostssl,
# as the deployed lines: libpq's and asyncpg's default sslmode=prefer gets it), so a client
# that turns TLS off is refused here as at a real main. ``all`` matches no replication
# connection, so a replica must pass the deployed ``replication`` line.
_ONE_MACHINE_HBA = """\
local all all trust
hostssl all all 127.0.0.1/32 trust
"""


def deploy_file(name: str) -> Path:
    path = DEPLOY_DIR / name
    if not path.is_file():
        raise RuntimeError(f"{path} not found: the local stack runs from a checkout of ccat_api")
    return path


def render_pg_hba() -> str:
    """The stack's pg_hba.conf: its own loopback lines, then the deployed ones (``hostssl``:
    TLS or nothing) with the loopback address for their network."""
    lines = [_ONE_MACHINE_HBA.rstrip("\n"), f"# {deploy_file('pg_hba.conf')}"]
    for line in deploy_file("pg_hba.conf").read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        words[3] = "127.0.0.1/32"
        lines.append(" ".join(words))
    return "\n".join(lines) + "\n"


def parse_conninfo(conninfo: str) -> dict[str, str]:
    """``key=value`` words (the deployed conninfo quotes nothing)."""
    return dict(word.split("=", 1) for word in conninfo.split())


# What the deployed primary_conninfo must name; the stack replaces all but user, keeps the rest.
_CONNINFO_KEYS = frozenset(
    {
        "host", "port", "user", "passfile", "application_name", "sslmode", "sslrootcert",
        "target_session_attrs",
    }
)  # fmt: skip


def render_standby_conf(
    *,
    upstreams: Sequence[tuple[str, int]],
    passfile: Path,
    slot: str,
    application_name: str,
    root_cert: Path,
) -> str:
    """deploy/postgresql/standby.conf with this replica's upstreams (every main node: it
    streams from the one that is primary), passfile, slot and the CA main's certificate is
    checked against (the deployed ``sslmode=verify-full`` stays)."""
    lines = []
    for line in deploy_file("standby.conf").read_text().splitlines():
        name, _, value = (part.strip() for part in line.partition("="))
        if name == "primary_conninfo":
            conninfo = parse_conninfo(value.strip("'"))
            # The deployed conninfo names each of these; the stack replaces, never adds.
            missing = sorted(_CONNINFO_KEYS - conninfo.keys())
            if missing:
                raise RuntimeError(
                    f"{deploy_file('standby.conf')}: primary_conninfo names no {', '.join(missing)}"
                )
            conninfo.update(
                host=",".join(host for host, _ in upstreams),
                port=",".join(str(port) for _, port in upstreams),
                passfile=str(passfile),
                application_name=application_name,
                sslrootcert=str(root_cert),
            )
            line = "primary_conninfo = '{}'".format(
                " ".join(f"{key}={value}" for key, value in conninfo.items())
            )
        elif name == "primary_slot_name":
            line = f"primary_slot_name = '{slot}'"
        lines.append(line)
    return "\n".join(lines) + "\n"


@dataclass
class PostgresCluster:
    name: str
    data_dir: Path
    port: int
    # The replication role's, set on a primary when its first replica is made.
    replication_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # Signs this primary's server certificate and is what its replicas trust; a cluster made
    # on its own (a test's) makes one next to its data directory.
    ca: CertificateAuthority | None = None

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
        # A copy next to postgresql.conf: a base backup carries it to every replica, which
        # must include it too (a hot standby needs the primary's max_connections and the like).
        self._write_owned(self.data_dir / "primary.conf", deploy_file("primary.conf").read_text())
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"\n# {deploy_file('primary.conf')}\ninclude 'primary.conf'\n")
            conf.write(self._one_machine_conf())
        self._write_owned(self.data_dir / "pg_hba.conf", render_pg_hba())
        self._install_certificate()

    def _install_certificate(self) -> None:
        """What primary.conf's ssl_* settings name, in the data directory (its relative paths
        are relative to it): the server's certificate and key (0600, the postgres user's; the
        server refuses a key others can read) and the CA."""
        if self.ca is None:
            self.ca = CertificateAuthority(self.data_dir.parent / "tls")
        self.ca.create()
        server = self.ca.issue(f"postgres-{self.name}")
        self._write_owned(self.data_dir / "server.crt", server.cert_file.read_text(), 0o644)
        self._write_owned(self.data_dir / "server.key", server.key_file.read_text(), 0o600)
        self._write_owned(self.data_dir / "root.crt", self.ca.cert_file.read_text(), 0o644)

    @property
    def root_cert(self) -> Path:
        """The CA this replica checks main's certificate against (``sslrootcert``)."""
        return self.data_dir.parent / "main-ca.crt"

    def _one_machine_conf(self) -> str:
        return _ONE_MACHINE_CONF.format(port=self.port, socket_dir=self.socket_dir, name=self.name)

    def _write_owned(self, path: Path, text: str, mode: int = 0o600) -> None:
        # Created with its mode (a key or password is never readable by others, even briefly).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as file:
            file.write(text)
        path.chmod(mode)
        hand_over(path.parent)

    def create_app_database(self) -> None:
        self.psql(f"CREATE ROLE {APP_USER} LOGIN", database="postgres")
        # pg_monitor lets the gateway read the WAL receiver's timings on the replica
        # (pg_stat_wal_receiver hides them from other roles); it grants no data access.
        self.psql(f"GRANT pg_monitor TO {APP_USER}", database="postgres")
        self.psql(f"CREATE DATABASE {APP_DB} OWNER {APP_USER}", database="postgres")

    def create_replication_role(self) -> None:
        """The role replicas stream as (deploy/postgresql/pg_hba.conf asks it for a password)."""
        exists = self.psql(
            "SELECT 1 FROM pg_roles WHERE rolname = 'replicator'", database="postgres"
        )
        if not exists:
            self.psql(
                f"CREATE ROLE {REPLICATION_USER} WITH REPLICATION LOGIN"
                f" PASSWORD '{self.replication_password}'",
                database="postgres",
            )

    @property
    def passfile(self) -> Path:
        """This replica's libpq passfile: the replication role's password, mode 0600."""
        return self.data_dir.parent / f"{REPLICATION_USER}.pgpass"

    def init_replica_of(
        self,
        primary: PostgresCluster,
        *,
        upstream_host: str = "127.0.0.1",
        upstream_port: int | None = None,
        upstreams: Sequence[tuple[str, int]] = (),
    ) -> None:
        """Base backup of ``primary`` that then streams from ``upstream`` (e.g. a WAN link),
        or from whichever of ``upstreams`` is the primary (main with a standby)."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        primary.create_replication_role()
        assert primary.ca is not None, "the primary is made (init_primary) before its replicas"
        self.ca = primary.ca
        self._write_owned(self.root_cert, primary.ca.cert_file.read_text(), 0o644)
        # Any host and port: the base backup comes straight from main, streaming over the WAN.
        self._write_owned(
            self.passfile, f"*:*:replication:{REPLICATION_USER}:{primary.replication_password}\n"
        )
        slot = self.slot_name
        # A replication slot keeps main's WAL for this replica through WAN outages, up to
        # max_slot_wal_keep_size. As in deploy/postgresql/standby.conf's header: no -R, the
        # deployed file says how to stream.
        self._pg(
            "pg_basebackup",
            "-d", (
                f"host=127.0.0.1 port={primary.port} user={REPLICATION_USER}"
                f" passfile={self.passfile} sslmode=verify-full sslrootcert={self.root_cert}"
            ),
            "-D", str(self.data_dir),
            "-X", "stream",
            "-C", "-S", slot,
            "--checkpoint=fast",
        )  # fmt: skip
        self._write_owned(self.data_dir / "standby.signal", "")
        self._write_owned(
            self.data_dir / "standby.conf",
            render_standby_conf(
                upstreams=upstreams or [(upstream_host, upstream_port or primary.port)],
                passfile=self.passfile,
                slot=slot,
                application_name=self.name,
                root_cert=self.root_cert,
            ),
        )
        # The base backup brought the primary's postgresql.conf (primary.conf included, its
        # ports after it); the standby's file and this cluster's own ports come last and win.
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"\n# {deploy_file('standby.conf')}\ninclude 'standby.conf'\n")
            conf.write(self._one_machine_conf())

    @property
    def slot_name(self) -> str:
        """The replication slot this cluster streams through, on every main node."""
        return f"{self.name.replace('-', '_')}_slot"

    def create_slot(self, slot: str) -> None:
        """A physical slot kept on this node for a replica that streams from another now:
        after a promotion it is here (Patroni's permanent slots do the same). It reserves WAL
        from now on, so the replica finds what it has not received yet; Patroni also moves
        such a copy along with the primary's, which this stack does not (a standby's WAL
        grows until a failover, bounded by max_slot_wal_keep_size)."""
        if not re.fullmatch(r"[a-z0-9_]+", slot):
            raise ValueError(f"not a slot name: {slot!r}")
        self.psql(
            "SELECT pg_create_physical_replication_slot(slot_name, true)"  # noqa: S608 (checked above)
            f" FROM (VALUES ('{slot}')) AS s(slot_name)"
            " WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = s.slot_name)",
            database="postgres",
        )

    def promote(self, timeout_s: int = 60) -> None:
        self._pg("pg_ctl", "-D", str(self.data_dir), "-w", "-t", str(timeout_s), "promote")

    def kill(self) -> None:
        """kill -9 of the postmaster, as a machine dying does (its children follow it)."""
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

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
