"""Secrets from files (``<setting>_file``), and the refusal of a secret file that others may
read outside development (ccat_api/config_secrets.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from ccat_api.config import Settings, load_settings

SECRET = "s" * 40


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer's CCAT_* variables or .env reach these tests."""
    for name in os.environ:
        if name.upper().startswith("CCAT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def secret_file(tmp_path: Path, mode: int, text: str = SECRET + "\n") -> Path:
    path = tmp_path / "session.secret"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_secret_comes_from_its_file_without_the_trailing_newline(tmp_path: Path) -> None:
    settings = Settings(session_secret_file=secret_file(tmp_path, 0o600))
    assert settings.session_secret == SECRET


def test_a_secret_file_others_may_read_is_refused_naming_the_setting_file_and_mode(
    tmp_path: Path,
) -> None:
    path = secret_file(tmp_path, 0o644)
    with pytest.raises(ValidationError) as refused:
        Settings(session_secret_file=path)
    message = str(refused.value)
    assert "session_secret_file" in message
    assert str(path) in message
    assert "0644" in message


def test_a_group_readable_secret_file_is_refused_too(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="mode 0640"):
        Settings(session_secret_file=secret_file(tmp_path, 0o640))


def test_development_accepts_a_readable_secret_file(tmp_path: Path) -> None:
    settings = Settings(development=True, session_secret_file=secret_file(tmp_path, 0o644))
    assert settings.session_secret == SECRET


def test_the_redis_password_file_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = tmp_path / "redis.password"
    password.write_text("hunter2-redis\n")
    password.chmod(0o600)
    monkeypatch.setenv("CCAT_DEVELOPMENT", "true")
    monkeypatch.setenv("CCAT_REDIS_USERNAME", "processor")
    monkeypatch.setenv("CCAT_REDIS_PASSWORD_FILE", str(password))
    settings = load_settings()
    assert (settings.redis_username, settings.redis_password) == ("processor", "hunter2-redis")


def test_a_database_passfile_others_may_read_is_refused(tmp_path: Path) -> None:
    passfile = tmp_path / "main.pgpass"
    passfile.write_text("*:*:ccat:ccat:secret\n")
    passfile.chmod(0o604)
    with pytest.raises(ValidationError, match=r"main_db_url \(passfile\).*mode 0604"):
        Settings(
            session_secret=SECRET,
            main_db_url=f"postgresql+asyncpg://ccat@main.example/ccat?passfile={passfile}",
        )


def test_a_setting_and_its_file_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="session_secret or session_secret_file"):
        Settings(session_secret=SECRET, session_secret_file=secret_file(tmp_path, 0o600))


def test_a_missing_secret_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="session_secret_file: cannot read"):
        Settings(session_secret_file=tmp_path / "absent")


def test_a_tls_key_others_may_read_is_refused(tmp_path: Path) -> None:
    cert, key = tmp_path / "gateway.crt", tmp_path / "gateway.key"
    cert.write_text("certificate")
    key.write_text("key")
    key.chmod(0o644)
    with pytest.raises(ValidationError, match=r"tls_key_file: .*gateway.key has mode 0644"):
        Settings(session_secret=SECRET, tls_cert_file=cert, tls_key_file=key)
    key.chmod(0o600)
    assert Settings(session_secret=SECRET, tls_cert_file=cert, tls_key_file=key).tls_key_file


def test_a_tls_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="set both"):
        Settings(session_secret=SECRET, tls_cert_file=tmp_path / "gateway.crt")
