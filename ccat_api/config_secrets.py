"""Secrets kept in files: ``<setting>_file`` names a file whose content is the setting's value
(``CCAT_SESSION_SECRET_FILE=/etc/ccat-api/session.secret``), so the environment file holds
paths rather than secrets, a group of settings that ``config.Settings`` inherits.

Outside development a secret file that its group or others may read is refused at start,
with the setting, the file and its mode named, as OpenSSH and libpq refuse such a key or
passfile. The same check covers a ``passfile=`` named in a database URL.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator
from sqlalchemy.engine import make_url

# Setting -> the setting whose value its file holds.
SECRET_FILES = {
    "session_secret_file": "session_secret",
    "github_client_secret_file": "github_client_secret",
    "redis_password_file": "redis_password",
}
# Private keys the service reads from a file of their own.
KEY_FILES = ("tls_key_file",)
# Database URLs that may name a libpq passfile (asyncpg reads it as libpq does).
DATABASE_URLS = ("main_db_url", "local_db_url")


class SecretFileSettings(BaseModel):
    session_secret_file: Path | None = Field(
        default=None,
        description="A file holding session_secret (instead of the value itself); mode 0600"
        " (refused if its group or others may read it, outside development).",
    )
    github_client_secret_file: Path | None = Field(
        default=None,
        description="A file holding github_client_secret; mode 0600, as session_secret_file.",
    )
    redis_password_file: Path | None = Field(
        default=None,
        description="A file holding redis_password (the password of redis_username); mode"
        " 0600, as session_secret_file.",
    )

    @field_validator(*SECRET_FILES, mode="before")
    @classmethod
    def _no_file_when_empty(cls, value: object) -> object:
        return None if value == "" else value


def read_secret_files(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each ``<setting>_file`` read into its setting (trailing newline
    dropped). Naming both the setting and its file is refused: which one wins would be a
    guess."""
    found = dict(values)
    for file_setting, setting in SECRET_FILES.items():
        path = found.get(file_setting)
        if path in (None, ""):
            continue
        if found.get(setting) not in (None, ""):
            raise ValueError(f"set {setting} or {file_setting}, not both")
        try:
            found[setting] = Path(path).read_text().rstrip("\r\n")
        except OSError as exc:
            raise ValueError(f"{file_setting}: cannot read {path}: {exc.strerror}") from None
    return found


def readable_by_others(path: Path) -> int | None:
    """The file's permission bits when its group or others may read it, else None."""
    mode = stat.S_IMODE(path.stat().st_mode)
    return mode if mode & (stat.S_IRWXG | stat.S_IRWXO) else None


def secret_files_in(settings: Any) -> Iterator[tuple[str, Path]]:
    """(setting, path) of every secret file the settings name."""
    for file_setting in (*SECRET_FILES, *KEY_FILES):
        path = getattr(settings, file_setting)
        if path is not None:
            yield file_setting, path
    for url_setting in DATABASE_URLS:
        url = getattr(settings, url_setting)
        passfile = make_url(url).query.get("passfile") if url else None
        if isinstance(passfile, str) and passfile:
            yield f"{url_setting} (passfile)", Path(passfile)


def refuse_readable_secret_files(settings: Any) -> None:
    """Outside development, a secret file its group or others may read is an error."""
    for setting, path in secret_files_in(settings):
        try:
            mode = readable_by_others(path)
        except OSError as exc:
            raise ValueError(f"{setting}: cannot read {path}: {exc.strerror}") from None
        if mode is not None:
            raise ValueError(
                f"{setting}: {path} has mode {mode:04o}, readable beyond its owner; it holds a"
                f" secret: chmod 600 {path} (accepted as is only with development = true)"
            )
