from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ccat_api.config import Settings, SiteType, load_settings


def test_secondary_site_needs_its_replica_and_redis() -> None:
    with pytest.raises(ValidationError, match="local_db_url, redis_url"):
        Settings(site_type=SiteType.SECONDARY)


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
    assert load_settings(settings_file).log_level == "INFO"


def test_bad_value_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CCAT_PROCESSOR_BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="processor_batch_size"):
        load_settings(tmp_path / "missing.toml")
