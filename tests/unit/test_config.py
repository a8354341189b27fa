from __future__ import annotations

import os
import re
import shutil
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from ccat_api.config import (
    DEFAULT_SETTINGS_FILE,
    Settings,
    load_settings,
    render_env_example,
)
from ccat_api.config_site import SiteType
from ccat_api.config_sources import RESERVED_ENV_NAMES, UnknownSettingError

SECRET = "s" * 40
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer's CCAT_* variables or .env reach these tests."""
    for name in os.environ:
        if name.upper().startswith("CCAT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def empty_file(tmp_path: Path) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text("")
    return path


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


def test_settings_built_directly_ignore_the_environment_and_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CCAT_LOG_LEVEL", "ERROR")
    (tmp_path / ".env").write_text("CCAT_LOG_FORMAT=text\n")
    settings = Settings(development=True)
    assert (settings.log_level, settings.log_format) == ("INFO", "json")


def test_team_roles_and_default_role_come_from_the_environment(
    empty_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CCAT_SESSION_SECRET", SECRET)
    monkeypatch.setenv("CCAT_GITHUB_TEAM_ROLES", '{"ops": "operator"}')
    monkeypatch.setenv("CCAT_GITHUB_DEFAULT_ROLE", "")
    settings = load_settings(empty_file)
    assert settings.github_team_roles == {"ops": "operator"}
    assert settings.github_default_role is None


def test_layers_file_then_dotenv_then_environment_then_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text(
        "[default]\nsite_name = 'main'\nprocessor_batch_size = 10\nlog_level = 'ERROR'\n"
        "[secondary]\nsite_type = 'secondary'\nsite_name = 'obs'\n"
        "local_db_url = 'postgresql+asyncpg://x@h/db'\nredis_url = 'redis://h'\n"
    )
    (tmp_path / ".env").write_text(
        "CCAT_ENV=secondary\nCCAT_PROCESSOR_BATCH_SIZE=200\nCCAT_LOG_LEVEL=WARNING\n"
    )
    monkeypatch.setenv("CCAT_PROCESSOR_BATCH_SIZE", "500")
    monkeypatch.setenv("CCAT_SESSION_SECRET", SECRET)
    settings = load_settings(settings_file, overrides={"site_name": "override"})
    assert settings.site_type is SiteType.SECONDARY
    assert settings.log_level == "WARNING"
    assert settings.processor_batch_size == 500
    assert settings.site_name == "override"
    assert settings.read_db_url == "postgresql+asyncpg://x@h/db"


def test_without_ccat_env_only_default_applies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text("[default]\nlog_level = 'ERROR'\n[development]\nlog_level = 'DEBUG'\n")
    monkeypatch.setenv("CCAT_SESSION_SECRET", SECRET)
    assert load_settings(settings_file).log_level == "ERROR"


def test_bad_value_names_the_setting(empty_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCAT_PROCESSOR_BATCH_SIZE", "0")
    monkeypatch.setenv("CCAT_SESSION_SECRET", SECRET)
    with pytest.raises(ValidationError, match="processor_batch_size"):
        load_settings(empty_file)


def test_a_sentinel_address_without_a_port_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match=r"redis_sentinels\.1"):
        Settings(development=True, redis_sentinels=["10.0.0.5:26379", "10.0.0.6"])
    assert Settings(development=True, redis_sentinels=["[::1]:26379"]).redis_sentinels


def test_misspelled_key_in_the_settings_file_is_refused_with_the_nearest_name(
    tmp_path: Path,
) -> None:
    settings_file = tmp_path / "settings.toml"
    # In a section not in use: it would bite the day a site switches to it.
    settings_file.write_text("[secondary]\nredis_ur = 'redis://h'\n")
    with pytest.raises(
        UnknownSettingError, match=r"\[secondary\].*redis_ur \(did you mean redis_url\?\)"
    ):
        load_settings(settings_file)


def test_misspelled_environment_variable_is_refused_with_the_nearest_name(
    empty_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CCAT_PROCESOR_BATCH_SIZE", "500")
    with pytest.raises(UnknownSettingError, match=r"did you mean CCAT_PROCESSOR_BATCH_SIZE\?"):
        load_settings(empty_file)


def test_misspelled_dotenv_name_is_refused_and_other_programs_lines_are_not(
    tmp_path: Path, empty_file: Path
) -> None:
    (tmp_path / ".env").write_text("PGPASSWORD=x\nCCAT_API_URL=http://h\nCCAT_SESION_SECRET=y\n")
    with pytest.raises(UnknownSettingError, match=r"\.env.*did you mean CCAT_SESSION_SECRET\?"):
        load_settings(empty_file)


def test_reserved_names_are_not_taken_for_settings(
    empty_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in RESERVED_ENV_NAMES - {"CCAT_ENV", "CCAT_SETTINGS_FILE"}:
        monkeypatch.setenv(name, "1")
    assert load_settings(empty_file, overrides={"development": True}).development


def test_ccat_env_naming_no_section_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCAT_ENV", "secondry")
    with pytest.raises(UnknownSettingError, match=r"did you mean secondary\?"):
        load_settings(DEFAULT_SETTINGS_FILE)


def test_every_key_in_the_settings_file_is_a_setting() -> None:
    sections = tomllib.loads(DEFAULT_SETTINGS_FILE.read_text())
    unknown = {
        f"[{section}] {key}"
        for section, keys in sections.items()
        for key in keys
        if key not in Settings.model_fields
    }
    assert not unknown


def test_settings_file_repeats_no_default() -> None:
    sections = tomllib.loads(DEFAULT_SETTINGS_FILE.read_text())
    repeated = {
        f"[{section}] {key}"
        for section, keys in sections.items()
        for key, value in keys.items()
        if value == Settings.model_fields[key].get_default(call_default_factory=True)
    }
    assert not repeated


def test_every_site_section_of_the_settings_file_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCAT_SESSION_SECRET", SECRET)
    for section in tomllib.loads(DEFAULT_SETTINGS_FILE.read_text()):
        monkeypatch.setenv("CCAT_ENV", section)
        load_settings()


def test_every_setting_has_a_description() -> None:
    assert not [name for name, field in Settings.model_fields.items() if not field.description]


def test_committed_env_example_is_what_the_model_generates() -> None:
    # On failure: `make env-example`.
    assert (REPO_ROOT / ".env.example").read_text() == render_env_example()


def test_env_example_uncommented_gives_the_defaults(tmp_path: Path, empty_file: Path) -> None:
    uncommented = re.sub(r"^# (CCAT_\w+=)", r"\1", render_env_example(), flags=re.MULTILINE)
    (tmp_path / ".env").write_text(uncommented)
    loaded = load_settings(empty_file, overrides={"development": True})
    assert loaded == Settings(development=True)


@pytest.mark.parametrize("name", ["main.env", "secondary.env"])
def test_deploy_environment_file_loads_once_its_secrets_are_set(tmp_path: Path, name: str) -> None:
    shutil.copy(REPO_ROOT / "deploy" / "env" / name, tmp_path / ".env")
    with pytest.raises(ValidationError, match=r"session_secret|redis_password_file"):
        load_settings()
    password = tmp_path / "redis.password"
    password.write_text("set")
    password.chmod(0o600)
    secrets = {
        "session_secret": "s" * 32,
        "github_client_secret": "set",
        "redis_password_file": str(password),
    }
    assert load_settings(overrides=secrets).site_type == name.removesuffix(".env")


def test_every_ccat_name_in_the_repository_is_a_setting_or_reserved() -> None:
    settings = {f"CCAT_{name.upper()}" for name in Settings.model_fields}
    sources = [REPO_ROOT / "README.md", REPO_ROOT / "Makefile"] + [
        path
        for folder in ("ccat_api", "tests", "bench", "deploy")
        for path in (REPO_ROOT / folder).rglob("*")
        if path.is_file() and path.suffix in {".py", ".env", ".md"}
    ]
    # This file spells wrong names on purpose; `CCAT_GITHUB_*` is a family, not a name.
    found = {
        name
        for path in sources
        if path != Path(__file__).resolve()
        for name in re.findall(r"\bCCAT_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())
    }
    assert found - settings - RESERVED_ENV_NAMES == set()
    assert RESERVED_ENV_NAMES - found == set()
