"""What the local stack needs from the machine: packages, free ports, an unprivileged user.

PostgreSQL refuses to run as root, so when we are root every PostgreSQL command runs as the
``postgres`` system user (created by Debian's package) in directories we hand over to it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

PG_USER = "postgres"
_APT_PACKAGES = {
    "postgres": "postgresql",
    "redis-server": "redis-server",
    "redis-sentinel": "redis-sentinel",
}


def find_pg_bin_dir() -> Path | None:
    """Newest installed PostgreSQL server binaries (Debian keeps them off PATH)."""
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = sorted(
            (p for p in root.iterdir() if (p / "bin" / "postgres").exists()),
            key=lambda p: int(p.name) if p.name.isdigit() else 0,
        )
        if versions:
            return versions[-1] / "bin"
    found = shutil.which("postgres")
    return Path(found).parent if found else None


def ensure_installed() -> None:
    """Install PostgreSQL, Redis and Redis Sentinel from Debian's packages when missing."""
    missing = []
    if find_pg_bin_dir() is None:
        missing.append(_APT_PACKAGES["postgres"])
    for binary in ("redis-server", "redis-sentinel"):
        if shutil.which(binary) is None:
            missing.append(_APT_PACKAGES[binary])
    if not missing:
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"missing packages {missing}; install them: apt-get install -y ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, env=env)
    # Debian's postinst starts a default cluster and Redis service; we leave those alone.


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout_s: float, host: str = "127.0.0.1") -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


def running_as_root() -> bool:
    return os.geteuid() == 0


def as_pg_user(argv: list[str]) -> list[str]:
    """Prefix a command so it runs as the PostgreSQL system user when we are root."""
    if not running_as_root():
        return argv
    return ["runuser", "-u", PG_USER, "--", *argv]


def hand_over(path: Path) -> None:
    """Make a directory owned by the PostgreSQL user (only needed when running as root)."""
    if running_as_root():
        entry = pwd.getpwnam(PG_USER)
        for dirpath, _dirs, files in os.walk(path):
            os.chown(dirpath, entry.pw_uid, entry.pw_gid)
            for name in files:
                os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)
