"""A secondary site started from ``deploy/`` the way an operator would: its units' ExecStart
lines run as written (the venv's path substituted, ports free ones, loopback for 0.0.0.0),
with the environment systemd would give them from the EnvironmentFile each unit names, only
the addresses of main, the replica and Redis pointed at a stack's and the placeholder secrets
set. The gateway answers /health and takes a buffered write; the processor started from its
unit replays it on main. Main's gateway starts from its unit and main.env the same way, and
the operator's token comes from ``ccat-api tokens create`` with main's environment.
``systemd-analyze verify`` checks the unit files where systemd is installed.

The units say ``User=ccat``; here the processes run as the test's user."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
import pytest

from ccat_api.config import load_settings
from ccat_api.devstack.stack import Stack
from ccat_api.devstack.system import free_port, wait_port
from tests.support import running_stack

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy"
UNITS = {
    "gateway": DEPLOY_DIR / "systemd" / "ccat-api-gateway@.service",
    "processor": DEPLOY_DIR / "systemd" / "ccat-api-processor.service",
}
# Where the units expect the install (deploy/README.md); here, this checkout's venv.
SHIPPED_VENV_BIN = "/opt/ccat-api/.venv/bin/"
VENV_BIN = f"{Path(sys.executable).parent}/"
# The settings the deployed files leave to the operator, with values the stack accepts.
SECRETS = {"CCAT_SESSION_SECRET", "CCAT_GITHUB_CLIENT_SECRET"}


def read_environment_file(path: Path) -> dict[str, str]:
    """What systemd's EnvironmentFile= makes of the files in deploy/env: ``KEY=VALUE``
    lines, ``#`` comments, one pair of quotes around a value removed, no expansion."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not KEY=VALUE: {line}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found[key.strip()] = value
    return found


def read_unit_service(path: Path) -> dict[str, str]:
    """The [Service] section of a unit file (each key the deployed units use once, but
    EnvironmentFile, whose files come one a line, in order)."""
    section = ""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            if key == "EnvironmentFile" and key in found:
                found[key] += "\n" + value
                continue
            assert key not in found, f"{path}: {key} twice"
            found[key] = value
    return found


def exec_start(unit: Path) -> tuple[list[str], dict[str, int]]:
    """The unit's ExecStart argv as this machine runs it, and the ports it was given."""
    argv = shlex.split(read_unit_service(unit)["ExecStart"])
    assert argv[0].startswith(SHIPPED_VENV_BIN), argv[0]
    argv[0] = VENV_BIN + argv[0].removeprefix(SHIPPED_VENV_BIN)
    ports = {}
    for i, word in enumerate(argv[:-1]):
        if word in {"--port", "--metrics-port"}:
            ports[word] = free_port()
            argv[i + 1] = str(ports[word])
        elif word in {"--host", "--metrics-host"}:
            argv[i + 1] = "127.0.0.1"
    return argv, ports


def environment_files_of(unit: Path, instance: str = "") -> list[Path]:
    """deploy/env's copies of the files the unit reads (/etc/ccat-api/NAME.env), in order."""
    found = []
    for named in read_unit_service(unit)["EnvironmentFile"].replace("%i", instance).split():
        assert named.startswith("/etc/ccat-api/"), named
        found.append(DEPLOY_DIR / "env" / Path(named).name)
    return found


def environment_file_of(unit: Path, instance: str = "") -> Path:
    """The site's environment file of the unit: the first it reads."""
    return environment_files_of(unit, instance)[0]


def with_address(url: str, port: int) -> str:
    """``url`` with its host and port replaced by the stack's; credentials and path kept."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def site_environment(stack: Stack, env_file: Path, *more: Path) -> dict[str, str]:
    """The process environment systemd would give a unit reading ``env_file`` and then
    ``more`` (a later file wins), pointed at the stack."""
    shipped = read_environment_file(env_file)
    for later in more:
        shipped.update(read_environment_file(later))
    env = {key: value for key, value in os.environ.items() if not key.startswith("CCAT_")}
    env.update(shipped)
    env["CCAT_MAIN_DB_URL"] = with_address(
        shipped["CCAT_MAIN_DB_URL"],
        stack.wan_port if shipped["CCAT_SITE_TYPE"] == "secondary" else stack.main_db.port,
    )
    # The shipped URL's CA file (sslrootcert) is the stack's CA here.
    shipped_ca = parse_qs(urlsplit(shipped["CCAT_MAIN_DB_URL"]).query).get("sslrootcert")
    if shipped_ca:
        env["CCAT_MAIN_DB_URL"] = env["CCAT_MAIN_DB_URL"].replace(
            shipped_ca[0], str(stack.ca.cert_file)
        )
    if "CCAT_LOCAL_DB_URL" in shipped:
        env["CCAT_LOCAL_DB_URL"] = with_address(shipped["CCAT_LOCAL_DB_URL"], stack.replica.port)
    env["CCAT_REDIS_URL"] = with_address(shipped["CCAT_REDIS_URL"], stack.redis.port)
    if "CCAT_REDIS_PASSWORD_FILE" in shipped:
        # The stack's password file of the user the env file names (mode 0600, as shipped).
        env["CCAT_REDIS_PASSWORD_FILE"] = str(
            stack.redis.acl.password_file(shipped["CCAT_REDIS_USERNAME"])
        )
    for name in SECRETS & shipped.keys():
        env[name] = stack.session_secret
    return env


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as started:
        yield started


class Service:
    """A unit's ExecStart run as a process in a working directory of its own."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.log_file = cwd / f"{name}.log"
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:]

    def wait_port(self, port: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not wait_port(port, 0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not listen on {port}:\n{self.log()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def poll(probe: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout_s} s; last: {last}")


@pytest.mark.parametrize("name", ["main.env", "secondary.env"])
def test_every_name_in_the_environment_file_is_a_setting(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loaded as systemd passes it (the environment, not a .env file): a CCAT_ name that is
    no setting is refused by the model, and each placeholder secret too until it is set."""
    shipped = read_environment_file(DEPLOY_DIR / "env" / name)
    assert all(key.startswith("CCAT_") for key in shipped), shipped.keys()
    for key in [key for key in os.environ if key.startswith("CCAT_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    for key, value in shipped.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match=r"session_secret|redis_password_file"):
        load_settings()
    for key in SECRETS & shipped.keys():
        monkeypatch.setenv(key, "s" * 32)
    password = tmp_path / "redis.password"
    password.write_text("set")
    password.chmod(0o600)
    monkeypatch.setenv("CCAT_REDIS_PASSWORD_FILE", str(password))
    settings = load_settings()
    assert settings.site_type == name.removesuffix(".env")
    if settings.is_secondary:
        # Gateways only serve; the processor is its own unit.
        assert settings.run_processor is False


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd); units unchecked")
    # Instances as the README enables them, with this machine's venv for the install's.
    copies = [
        tmp_path / "ccat-api-gateway@main.service",
        tmp_path / "ccat-api-gateway@secondary.service",
        tmp_path / "ccat-api-processor.service",
    ]
    for copy in copies:
        source = UNITS["processor" if "processor" in copy.name else "gateway"]
        copy.write_text(source.read_text().replace(SHIPPED_VENV_BIN, VENV_BIN))
    verified = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *map(str, copies)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if "Failed to" in verified.stderr and "bus" in verified.stderr.lower():
        pytest.skip(f"systemd-analyze cannot run in this container: {verified.stderr.strip()}")
    # Unknown keys and unparsable values are only warnings, with exit code 0.
    assert (verified.returncode, verified.stderr) == (0, "")


def test_a_site_started_from_its_units_serves_buffers_and_drains_to_main(
    stack: Stack, tmp_path: Path
) -> None:
    services: list[Service] = []
    try:
        main_env = site_environment(stack, environment_file_of(UNITS["gateway"], "main"))
        site_env = site_environment(stack, environment_file_of(UNITS["gateway"], "secondary"))
        processor_files = environment_files_of(UNITS["processor"])
        assert [path.name for path in processor_files] == ["secondary.env", "processor.env"]
        processor_env = site_environment(stack, *processor_files)
        # The site's settings, but its own Redis user (deploy/redis/users.acl).
        assert processor_env["CCAT_REDIS_USERNAME"] == "processor"
        differs = {key for key in processor_env.keys() | site_env.keys()
                   if processor_env.get(key) != site_env.get(key)}  # fmt: skip
        assert differs == {"CCAT_REDIS_USERNAME", "CCAT_REDIS_PASSWORD_FILE"}

        main_argv, main_ports = exec_start(UNITS["gateway"])
        services.append(Service("gateway-main", main_argv, main_env, tmp_path))
        site_argv, site_ports = exec_start(UNITS["gateway"])
        services.append(Service("gateway-secondary", site_argv, site_env, tmp_path))
        processor_argv, processor_ports = exec_start(UNITS["processor"])
        assert processor_argv[1] == "process"
        services.append(Service("processor", processor_argv, processor_env, tmp_path))

        # The operator's token, made on main as deploy/README.md says.
        created = subprocess.run(
            [VENV_BIN + "ccat-api", "tokens", "create", "--user", "deploy-check",
             "--role", "operator"],
            env=main_env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip().splitlines()[-1]
        stack.wait_replica_caught_up()

        for service, ports in zip(services, (main_ports, site_ports, processor_ports), strict=True):
            for port in ports.values():
                service.wait_port(port)
        main_url = f"http://127.0.0.1:{main_ports['--port']}"
        site_url = f"http://127.0.0.1:{site_ports['--port']}"

        def health(url: str) -> Any:
            answer = httpx.get(f"{url}/health", timeout=10)
            body = answer.json()
            return body if answer.status_code == 200 and body["status"] == "ok" else None

        main_health = poll(lambda: health(main_url), 60, "main's gateway healthy")
        assert (main_health["site"], main_health["main"]["ok"]) == ("main", True)
        site_health = poll(
            lambda: (found := health(site_url)) and found["main"]["ok"] and found,
            60,
            "the site's gateway healthy with main reachable",
        )
        assert site_health["site"] == "observatory"
        assert site_health["replica"]["in_recovery"] is True
        assert site_health["redis"]["ok"] is True
        metrics = httpx.get(f"http://127.0.0.1:{processor_ports['--metrics-port']}/metrics")
        assert metrics.status_code == 200

        headers = {"Authorization": f"Bearer {token}"}
        written = httpx.post(
            f"{site_url}/executed_obs_units/start",
            json={"obs_unit_id": 1},
            headers=headers,
            timeout=10,
        )
        assert written.status_code == 201, written.text
        assert written.json()["status"] == "buffered"
        tx_id, record = written.json()["tx_id"], written.json()["id"]

        def state() -> str | None:
            found = httpx.get(f"{site_url}/transactions/{tx_id}", headers=headers, timeout=10)
            value = found.json().get("state")
            return value if value in {"applied", "visible"} else None

        poll(state, 60, "the processor started from its unit applied the write")
        # Each logged in to Redis as the user its environment file names.
        admin = stack.redis.client(decode_responses=True)
        logged_in = {entry["user"] for entry in admin.client_list()}
        admin.close()
        assert {"gateway", "processor"} <= logged_in, logged_in
        # The site's connections to main (the processor's replay, the gateway's probe) are
        # TLS, through the shipped sslmode=verify-full.
        over_tls = stack.main_db.psql(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
            " WHERE a.application_name = 'ccat-processor-observatory' AND s.ssl"
        )
        assert int(over_tls) >= 1
        on_main = stack.main_db.psql(
            f"SELECT count(*) FROM executed_obs_units WHERE id = '{record}'"
        )
        assert on_main == "1"
        for service in services:
            assert service.process.poll() is None, f"{service.name} exited:\n{service.log()}"
    finally:
        for service in services:
            service.stop()
