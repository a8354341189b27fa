from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ccat_api.config import Settings, SiteType, load_settings

SECRET = "s" * 40


def test_secondary_site_needs_its_replica_and_redis() -> None:
    with pytest.raises(ValidationError, match="local_db_url, redis_url"):
        Settings(site_type=SiteType.SECONDARY, session_secret=SECRET)


def test_placeholder_session_secret_is_refused_outside_development() -> None:
    with pytest.raises(ValidationError, match="session_secret"):
        Settings()
    with pytest.raises(ValidationError, match="session_secret"):
        Settings(session_secret="short")
    assert Settings(development=True).development


def test_github_login_needs_its_client_secret_outside_development() -> None:
    with pytest.raises(ValidationError, match="github_client_secret"):
        Settings(session_secret=SECRET, github_client_id="Iv1.abc")
    Settings(session_secret=SECRET, github_client_id="Iv1.abc", github_client_secret="x" * 40)


def test_team_roles_and_default_role_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CCAT_SESSION_SECRET", SECRET)
    monkeypatch.setenv("CCAT_GITHUB_TEAM_ROLES", '@json {"ops": "operator"}')
    monkeypatch.setenv("CCAT_GITHUB_DEFAULT_ROLE", "")
    settings = load_settings(tmp_path / "missing.toml")
    assert settings.github_team_roles == {"ops": "operator"}
    assert settings.github_default_role is None


def test_layers_file_then_environment_then_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text(
        "[default]\nsite_name = 'main'\nprocessor_batch_size = 10\n"
        "[secondary]\nsite_type = 'secondary'\nsite_name = 'obs'\n"
        "local_db_url = 'postgresql+asyncpg://x@h/db'\nredis_url = 'redis://h'\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CCAT_ENV", "secondary")
    monkeypatch.setenv("CCAT_PROCESSOR_BATCH_SIZE", "500")
    monkeypatch.setenv("CCAT_SESSION_SECRET", SECRET)
    settings = load_settings(settings_file, overrides={"site_name": "override"})
    assert settings.site_type is SiteType.SECONDARY
    assert settings.processor_batch_size == 500
    assert settings.site_name == "override"
    assert settings.read_db_url == "postgresql+asyncpg://x@h/db"


def test_without_ccat_env_only_default_applies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text("[default]\nlog_level = 'INFO'\n[development]\nlog_level = 'DEBUG'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CCAT_ENV", raising=False)
    monkeypatch.setenv("CCAT_SESSION_SECRET", SECRET)
    assert load_settings(settings_file).log_level == "INFO"


def test_bad_value_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CCAT_PROCESSOR_BATCH_SIZE", "0")
    monkeypatch.setenv("CCAT_SESSION_SECRET", SECRET)
    with pytest.raises(ValidationError, match="processor_batch_size"):
        load_settings(tmp_path / "missing.toml")
