"""The PostgreSQL files an operator deploys load in the real server and are what it runs:
every setting of ``deploy/postgresql/primary.conf`` is in effect on a primary the devstack
starts (the stack changes only where it listens), every setting of ``standby.conf`` on its
replica, which streams as ``replicator`` with the password from its passfile through the
deployed ``pg_hba.conf`` line, and is refused without it. The stack's clusters are started
the same way, so every test that starts one loads these files too."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ccat_api.devstack.postgres import (
    DEPLOY_DIR,
    REPLICATION_USER,
    PostgresCluster,
    parse_conninfo,
)
from ccat_api.devstack.system import as_pg_user, find_pg_bin_dir, free_port
from ccat_api.devstack.tls import CertificateAuthority

# Set after the deployed file by the stack: one machine, several clusters.
ONE_MACHINE_SETTINGS = {"listen_addresses", "port", "unix_socket_directories"}


@dataclass
class Pair:
    primary: PostgresCluster
    replica: PostgresCluster


def settings_in(name: str) -> dict[str, str]:
    """``name = value`` lines of a deployed file, comments dropped."""
    found = {}
    for line in (DEPLOY_DIR / name).read_text().splitlines():
        setting, sep, value = line.partition("#")[0].partition("=")
        if sep:
            found[setting.strip()] = value.strip()
    return found


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    if find_pg_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries not installed (make system-deps)")
    base = Path(tempfile.mkdtemp(prefix="deploy-postgres-"))
    # The postgres user must reach its directories below ours.
    os.chmod(base, 0o755)  # noqa: S103
    primary = PostgresCluster("main-db", base / "main-db" / "data", free_port())
    replica = PostgresCluster("replica", base / "replica" / "data", free_port())
    try:
        primary.init_primary()
        primary.start()
        replica.init_replica_of(primary)
        replica.start()
        yield Pair(primary, replica)
    finally:
        for cluster in (replica, primary):
            if (cluster.data_dir / "postmaster.pid").exists():
                cluster.stop("immediate")
        subprocess.run(["rm", "-rf", str(base)], check=False)


def in_effect(cluster: PostgresCluster, names: list[str]) -> dict[str, str]:
    """Each setting's source file, as the running server reports it."""
    rows = cluster.psql(
        "SELECT name, coalesce(sourcefile, source) FROM pg_settings"
        f" WHERE name IN ({', '.join(repr(name) for name in names)})",
        database="postgres",
    )
    return dict(line.split("|", 1) for line in rows.splitlines())


def test_every_setting_of_primary_conf_is_in_effect_on_the_primary_and_the_replica(
    pair: Pair,
) -> None:
    """A hot standby includes primary.conf too (it needs the primary's max_connections)."""
    names = sorted(settings_in("primary.conf").keys() - ONE_MACHINE_SETTINGS)
    assert "wal_level" in names
    for cluster in (pair.primary, pair.replica):
        sources = in_effect(cluster, names)
        assert sources.keys() == set(names), f"not settings: {set(names) - sources.keys()}"
        wrong = {
            name: source for name, source in sources.items() if Path(source).name != "primary.conf"
        }
        assert not wrong, f"{cluster.name}: not from primary.conf: {wrong}"
    assert pair.primary.psql("SHOW wal_level", database="postgres") == "replica"


def test_every_setting_of_standby_conf_is_in_effect_on_the_replica(pair: Pair) -> None:
    names = sorted(settings_in("standby.conf"))
    assert "primary_conninfo" in names
    sources = in_effect(pair.replica, names)
    assert sources.keys() == set(names), f"not settings: {set(names) - sources.keys()}"
    wrong = {
        name: source for name, source in sources.items() if Path(source).name != "standby.conf"
    }
    assert not wrong, f"not from standby.conf: {wrong}"
    assert pair.replica.psql("SELECT pg_is_in_recovery()", database="postgres") == "t"


def test_the_deployed_conninfo_names_the_replication_role_and_a_passfile_not_a_password() -> None:
    conninfo = parse_conninfo(settings_in("standby.conf")["primary_conninfo"].strip("'"))
    assert conninfo["user"] == REPLICATION_USER
    assert conninfo["passfile"].startswith("/")
    assert conninfo["sslmode"] == "verify-full"
    assert "password" not in conninfo


def test_the_replica_streams_as_the_replication_role_with_the_password_from_its_passfile(
    pair: Pair,
) -> None:
    deadline = time.monotonic() + 30
    streaming = ""
    while time.monotonic() < deadline:
        streaming = pair.primary.psql(
            "SELECT usename, application_name, state FROM pg_stat_replication",
            database="postgres",
        )
        if streaming.endswith("|streaming"):
            break
        time.sleep(0.1)
    assert streaming == f"{REPLICATION_USER}|replica|streaming"
    assert stat.S_IMODE(pair.replica.passfile.stat().st_mode) == 0o600
    rules = pair.primary.psql(
        "SELECT database, user_name, auth_method FROM pg_hba_file_rules"
        " WHERE database = '{replication}'",
        database="postgres",
    )
    # The only line that admits a replication connection is the deployed one.
    assert rules == "{replication}|{replicator}|scram-sha-256"


def test_pg_hba_conf_loads_without_errors(pair: Pair) -> None:
    errors = pair.primary.psql(
        "SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL",
        database="postgres",
    )
    assert errors == ""
    deployed = [
        line.split()
        for line in (DEPLOY_DIR / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    loaded = pair.primary.psql(
        "SELECT database[1], user_name[1], auth_method FROM pg_hba_file_rules", database="postgres"
    ).splitlines()
    for words in deployed:
        assert f"{words[1]}|{words[2]}|{words[4]}" in loaded


def test_a_replication_connection_without_the_password_is_refused(pair: Pair) -> None:
    bin_dir = find_pg_bin_dir()
    assert bin_dir is not None
    refused = subprocess.run(
        as_pg_user([
            str(bin_dir / "psql"),
            f"host=127.0.0.1 port={pair.primary.port} user={REPLICATION_USER}"
            " dbname=replication replication=true passfile=/nonexistent connect_timeout=5",
            "-c", "IDENTIFY_SYSTEM",
        ]),
        capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "PGPASSWORD": ""},
    )  # fmt: skip
    assert refused.returncode != 0
    assert "password" in refused.stderr, refused.stderr


def test_the_replica_streams_over_tls_it_verified(pair: Pair) -> None:
    """primary_conninfo keeps the deployed sslmode=verify-full, with the stack's CA."""
    conninfo = parse_conninfo(
        pair.replica.psql("SHOW primary_conninfo", database="postgres").strip("'")
    )
    assert conninfo["sslmode"] == "verify-full"
    assert conninfo["sslrootcert"] == str(pair.replica.root_cert)
    deadline = time.monotonic() + 30
    row = ""
    while time.monotonic() < deadline:
        row = pair.primary.psql(
            "SELECT s.ssl, s.version IS NOT NULL FROM pg_stat_replication r"
            " JOIN pg_stat_ssl s USING (pid) WHERE r.usename = 'replicator'",
            database="postgres",
        )
        if row:
            break
        time.sleep(0.1)
    assert row == "t|t"


def replication_attempt(pair: Pair, tls: str) -> subprocess.CompletedProcess[str]:
    bin_dir = find_pg_bin_dir()
    assert bin_dir is not None
    return subprocess.run(
        as_pg_user([
            str(bin_dir / "psql"),
            f"host=127.0.0.1 port={pair.primary.port} user={REPLICATION_USER}"
            f" dbname=replication replication=true passfile={pair.replica.passfile}"
            f" connect_timeout=5 {tls}",
            "-c", "IDENTIFY_SYSTEM",
        ]),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_a_replication_connection_without_tls_is_refused_by_the_hostssl_line(pair: Pair) -> None:
    refused = replication_attempt(pair, "sslmode=disable")
    assert refused.returncode != 0
    assert "no encryption" in refused.stderr, refused.stderr


def test_a_replication_connection_that_trusts_another_ca_is_refused(pair: Pair) -> None:
    accepted = replication_attempt(
        pair, f"sslmode=verify-full sslrootcert={pair.replica.root_cert}"
    )
    assert accepted.returncode == 0, accepted.stderr
    # Where the postgres user can read it (the pair's directory).
    other = CertificateAuthority(pair.primary.data_dir.parents[1] / "other-ca").create("other")
    refused = replication_attempt(pair, f"sslmode=verify-full sslrootcert={other.cert_file}")
    assert refused.returncode != 0
    assert "certificate verify failed" in refused.stderr, refused.stderr


def test_a_connection_to_main_without_tls_is_refused(pair: Pair) -> None:
    """Every TCP line of the primary's pg_hba.conf is hostssl: a client that turns TLS off
    (sslmode=disable) is refused whoever it is; with TLS the same client gets in."""
    bin_dir = find_pg_bin_dir()
    assert bin_dir is not None

    def attempt(sslmode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            as_pg_user([
                str(bin_dir / "psql"),
                f"host=127.0.0.1 port={pair.primary.port} user=postgres dbname=postgres"
                f" connect_timeout=5 sslmode={sslmode}",
                "-Atc", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            ]),
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    refused = attempt("disable")
    assert refused.returncode != 0
    assert "no encryption" in refused.stderr, refused.stderr
    assert attempt("require").stdout.strip() == "t"
