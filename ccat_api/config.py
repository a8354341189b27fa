"""One typed Settings object for the whole service; the model is where every default lives.

``load_settings()`` layers, highest last: the model's defaults, the settings file's [default]
and then the section named by ``CCAT_ENV`` (dynaconf), ``.env``, ``CCAT_*`` environment
variables, then explicit overrides. pydantic validates the result, so a wrong value fails at
start with the field's name, and a name that is no setting is refused with the nearest one.
``Settings(...)`` takes its arguments and the defaults only. The fields come in groups, one
module each (``config_site``, ``config_service``, ``config_retention``, ``config_replay``,
``config_admission``, ``config_live``, ``config_status``, ``config_access``,
``config_secrets``); ``Settings`` inherits them all and adds the checks that span groups.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ccat_api.config_access import PLACEHOLDER_SECRET, AccessSettings
from ccat_api.config_admission import AdmissionSettings
from ccat_api.config_live import LiveSettings
from ccat_api.config_replay import ReplaySettings
from ccat_api.config_retention import RetentionSettings
from ccat_api.config_secrets import (
    SecretFileSettings,
    read_secret_files,
    refuse_readable_secret_files,
)
from ccat_api.config_service import ServiceSettings
from ccat_api.config_site import SiteSettings, SiteType
from ccat_api.config_sources import (
    ENV_PREFIX,
    LAYER_ENV_NAMES,
    DotEnvSource,
    EnvironmentSource,
    SiteFileSource,
)
from ccat_api.config_status import StatusSettings

# Package data, so an installed wheel layers the same site sections as a checkout.
DEFAULT_SETTINGS_FILE = Path(__file__).resolve().with_name("settings.toml")


class Settings(
    LiveSettings,
    AdmissionSettings,
    ReplaySettings,
    RetentionSettings,
    ServiceSettings,
    SiteSettings,
    StatusSettings,
    AccessSettings,
    SecretFileSettings,
    BaseSettings,
):
    # Each group is a base class; pydantic orders the fields from the last base to the first,
    # so the groups are listed here in reverse of the order .env.example and the docs show.
    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", env_prefix=ENV_PREFIX, env_file=".env"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Settings(...) is what tests build: a developer's CCAT_* variables or .env must not
        # change it. load_settings() adds those layers, and the settings file's section,
        # which it picks per call.
        return (init_settings,)

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: Any) -> Any:
        return read_secret_files(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Self:
        if self.development:
            return self
        refuse_readable_secret_files(self)
        if self.session_secret == PLACEHOLDER_SECRET or len(self.session_secret) < 32:
            raise ValueError(
                "session_secret: set a random secret of 32 characters or more (the same at"
                " every site); the placeholder is accepted only with development = true"
            )
        if self.github_client_id and (
            not self.github_client_secret or self.github_client_secret == PLACEHOLDER_SECRET
        ):
            raise ValueError("github_client_secret: set the OAuth app's secret")
        return self

    @model_validator(mode="after")
    def _tls_needs_certificate_and_key(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file: set both (HTTPS) or neither")
        return self

    @model_validator(mode="after")
    def _secondary_needs_local_services(self) -> Self:
        if self.site_type is SiteType.SECONDARY:
            missing = [name for name in ("local_db_url",) if not getattr(self, name)]
            if not self.redis_url and not self.redis_sentinels:
                missing.append("redis_url")
            if missing:
                raise ValueError(
                    f"site_type=secondary needs {', '.join(missing)} (the local replica and Redis)"
                )
        return self


def load_settings(
    settings_file: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Read the layered configuration; ``overrides`` win over every source (tests, CLI flags)."""
    return Settings(**layered_values(settings_file, overrides))


def layered_values(
    settings_file: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What the sources set, layered, before the model validates it: a command that needs one
    group of settings (``StatusSettings``) validates only that group."""
    environment = EnvironmentSource(Settings)
    dotenv = DotEnvSource(Settings)

    def chosen(name: str) -> str | None:
        return environment.env_vars.get(name.lower()) or dotenv.env_vars.get(name.lower())

    site_file = SiteFileSource(
        Settings,
        settings_file or Path(chosen("CCAT_SETTINGS_FILE") or DEFAULT_SETTINGS_FILE),
        chosen("CCAT_ENV") or "default",
    )
    values: dict[str, Any] = {}
    for source in (site_file, dotenv, environment):  # lowest precedence first
        values.update(source())
    values.update(overrides or {})
    return values


def render_env_example() -> str:
    """The text of ``.env.example``: every setting with its description and default."""
    lines = [
        "# Generated from the Settings model (ccat_api/config.py) by `make env-example`; a unit",
        "# test keeps the two equal. Copy to .env and uncomment what this site changes.",
        "# Highest wins: CCAT_* environment variables, .env, the settings file's CCAT_ENV section,",
        "# its [default], the model's defaults. A CCAT_* name that is no setting is refused.",
    ]
    for name, text, value in env_entries():
        lines.append("")
        lines.extend(textwrap.wrap(text, width=92, initial_indent="# ", subsequent_indent="# "))
        lines.append(f"# {name}={value}")
    return "\n".join(lines) + "\n"


def env_entries() -> list[tuple[str, str, str]]:
    """Every name ``.env`` may set, as ``(CCAT_ name, description, default as .env writes it)``:
    the names that choose the layers, then each setting in the model's order. ``.env.example``
    and the docs' configuration reference are both written from this."""
    entries = [(name, text, "") for name, text in LAYER_ENV_NAMES.items()]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        entries.append((ENV_PREFIX + name.upper(), field.description or "", _env_value(default)))
    return entries


def _env_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)
