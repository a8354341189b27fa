"""Who may use a site's Redis: the ACL users of ``deploy/redis/users.acl`` (one per component:
gateway, processor, monitor; ``replica`` and ``sentinel`` for the set itself; ``admin`` for
people and the stack's own checks), each given a random password by the stack.

The deployed file names no password (a user without one cannot log in, and the ``default``
user is off, so a connection without credentials is refused; it keeps every permission only
because Redis 7.0 replays the AOF's MULTI/EXEC blocks as that user, and without them a
restart drops the buffer: ``test_deploy_redis``); the stack adds each user's
SHA-256 (``#<hex>``) and keeps the passwords in files of mode 0600 (``<user>.password``), as an
operator does with ``ACL SETUSER <user> >PASSWORD`` and ``ACL SAVE``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

DEPLOY_ACL = Path(__file__).resolve().parents[2] / "deploy" / "redis" / "users.acl"
# The stack's own checks (and tests) log in as this user.
ADMIN = "admin"


def write_secret(path: Path, text: str) -> None:
    """A file only its owner reads: created with mode 0600, never readable by others."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    path.chmod(0o600)


def deployed_users() -> list[str]:
    return [line.split()[1] for line in DEPLOY_ACL.read_text().splitlines() if line.strip()]


@dataclass
class RedisUsers:
    """The users of one site's Redis (every member of its set shares them)."""

    directory: Path
    passwords: dict[str, str] = field(default_factory=dict)

    def create(self) -> RedisUsers:
        """A password for every deployed user, kept in ``directory`` (mode 0700); the same
        ones again if they were made before (a restarted Redis)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        for user in deployed_users():
            if user == "default":
                continue
            path = self.password_file(user)
            if not path.exists():
                write_secret(path, secrets.token_urlsafe(24))
            self.passwords[user] = path.read_text()
        return self

    def password_file(self, user: str) -> Path:
        return self.directory / f"{user}.password"

    def password(self, user: str) -> str:
        if not self.passwords:
            self.create()
        return self.passwords[user]

    def render_acl(self) -> str:
        """deploy/redis/users.acl with each user's password hash added to its line."""
        lines = []
        for line in DEPLOY_ACL.read_text().splitlines():
            words = line.split()
            if not words:
                continue
            if words[1] != "default":
                digest = hashlib.sha256(self.password(words[1]).encode()).hexdigest()
                words.insert(3, f"#{digest}")
            lines.append(" ".join(words))
        return "\n".join(lines) + "\n"

    def write_acl(self, path: Path) -> Path:
        write_secret(path, self.render_acl())
        return path

    def url(self, user: str, port: int, database: int = 0) -> str:
        password = quote(self.password(user), safe="")
        return f"redis://{user}:{password}@127.0.0.1:{port}/{database}"
