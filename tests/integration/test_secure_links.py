"""The links of a site are authenticated and encrypted (issue 17): the site reaches main over
TLS it verifies (sslmode=verify-full against the stack's CA, through the WAN link), and is
refused without the CA or with another; the site's Redis knows each component by its own
user and refuses a connection without credentials; a gateway can answer HTTPS itself."""

from __future__ import annotations

import ssl
import time

import asyncpg
import httpx
import pytest
import redis
from sqlalchemy import text

from ccat_api.config import Settings
from ccat_api.db import migrate
from ccat_api.db.engines import make_engine
from ccat_api.devstack.stack import Stack
from ccat_api.devstack.system import free_port
from ccat_api.devstack.tls import CertificateAuthority
from ccat_api.runtime import plain_dsn, site_redis

SSL_OF_THIS_CONNECTION = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def site_main_url(stack: Stack) -> str:
    url = str(stack.settings_overrides()["main_db_url"])
    assert "sslmode=verify-full" in url
    assert f"sslrootcert={stack.ca.cert_file}" in url
    return url


async def test_replay_reaches_main_over_tls_it_verified(stack: Stack) -> None:
    conn = await asyncpg.connect(plain_dsn(site_main_url(stack)), timeout=10)
    try:
        assert await conn.fetchval(SSL_OF_THIS_CONNECTION) is True
    finally:
        await conn.close()
    engine = make_engine(
        site_main_url(stack), pool_size=1, connect_timeout_s=10, application_name="tls-test"
    )
    try:
        async with engine.connect() as sa_conn:
            assert (await sa_conn.execute(text(SSL_OF_THIS_CONNECTION))).scalar() is True
    finally:
        await engine.dispose()


async def test_a_connection_to_main_without_the_ca_is_refused(stack: Stack) -> None:
    without = site_main_url(stack).replace(str(stack.ca.cert_file), "/nonexistent/ca.crt")
    with pytest.raises((OSError, asyncpg.exceptions.ClientConfigurationError)):
        await asyncpg.connect(plain_dsn(without), timeout=10)
    with pytest.raises(FileNotFoundError):
        make_engine(without, pool_size=1, connect_timeout_s=10, application_name="tls-test")


async def test_a_connection_to_main_that_trusts_another_ca_is_refused(stack: Stack) -> None:
    other = CertificateAuthority(stack.base_dir / "other-ca").create("not the stack's CA")
    wrong = site_main_url(stack).replace(str(stack.ca.cert_file), str(other.cert_file))
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncpg.connect(plain_dsn(wrong), timeout=10)
    engine = make_engine(wrong, pool_size=1, connect_timeout_s=10, application_name="tls-test")
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            async with engine.connect():
                pass
    finally:
        await engine.dispose()


def test_migrations_reach_main_over_tls_and_refuse_another_ca(stack: Stack) -> None:
    """``ccat-api migrate`` from a site's settings: the URL's sslmode and CA are honoured."""
    migrate.upgrade(site_main_url(stack))  # at head already: connects, checks, changes nothing
    other = CertificateAuthority(stack.base_dir / "other-ca-migrate").create("another CA")
    wrong = site_main_url(stack).replace(str(stack.ca.cert_file), str(other.cert_file))
    with pytest.raises(ssl.SSLCertVerificationError):
        migrate.upgrade(wrong)


def test_the_sites_replica_streams_from_main_over_tls(stack: Stack) -> None:
    deadline = time.monotonic() + 30
    rows = ""
    while time.monotonic() < deadline:
        rows = stack.main_db.psql(
            "SELECT r.application_name, s.ssl FROM pg_stat_replication r"
            " JOIN pg_stat_ssl s USING (pid) ORDER BY 1",
            database="postgres",
        )
        if stack.replica.name in rows:
            break
        time.sleep(0.1)
    assert f"{stack.replica.name}|t" in rows.splitlines()


def test_the_sites_redis_refuses_a_connection_without_credentials(stack: Stack) -> None:
    anonymous = redis.Redis(port=stack.redis.port, socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        anonymous.get("ccat:observatory:seq")
    anonymous.close()


async def test_the_gateway_and_the_processor_log_in_to_redis_as_their_own_users(
    stack: Stack,
) -> None:
    for component in ("gateway", "processor"):
        settings = Settings.model_validate(stack.settings_overrides(component=component))
        client = site_redis(settings)
        try:
            assert await client.acl_whoami() in (component, component.encode())
        finally:
            await client.aclose()


def test_the_monitor_user_cannot_write_the_buffer(stack: Stack) -> None:
    monitor = redis.Redis.from_url(stack.redis.url_for("monitor"), socket_timeout=5)
    try:
        monitor.get("ccat:observatory:seq")
        with pytest.raises(redis.exceptions.NoPermissionError):
            monitor.incr("ccat:observatory:seq")
    finally:
        monitor.close()


def test_the_gateway_serves_https_that_a_client_verifies_against_the_ca(stack: Stack) -> None:
    """``ccat-api serve`` with tls_cert_file and tls_key_file (a certificate of the stack's
    CA, key mode 0600): an HTTPS client that trusts the CA gets its answers; one that trusts
    another CA, or speaks plain HTTP, does not."""
    certificate = stack.ca.issue("gateway-tlsmain")
    port = free_port()
    stack.start_gateway(
        "tlsmain",
        secondary=False,
        port=port,
        settings={
            "tls_cert_file": str(certificate.cert_file),
            "tls_key_file": str(certificate.key_file),
        },
    )
    try:
        trusting = ssl.create_default_context(cafile=str(stack.ca.cert_file))
        with httpx.Client(verify=trusting, timeout=10) as https:
            answer = https.get(f"https://127.0.0.1:{port}/health")
        assert answer.status_code == 200, answer.text
        assert answer.json()["site"] == "tlsmain"
        other = CertificateAuthority(stack.base_dir / "other-ca").create("not the stack's CA")
        distrusting = ssl.create_default_context(cafile=str(other.cert_file))
        with (
            httpx.Client(verify=distrusting, timeout=10) as https,
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            https.get(f"https://127.0.0.1:{port}/health")
        with httpx.Client(timeout=10) as plain, pytest.raises(httpx.HTTPError):
            plain.get(f"http://127.0.0.1:{port}/health")
    finally:
        stack.gateways.pop("tlsmain").stop()
        stack.gateway_ports.pop("tlsmain")
