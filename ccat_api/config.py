"""One typed Settings object for the whole service.

dynaconf layers the sources (``config/settings.toml`` [default], the environment picked by
``CCAT_ENV``, ``.env``, then ``CCAT_*`` variables, highest last); pydantic validates the result
so a wrong value fails at start with the field's name instead of deep inside a request.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from dynaconf import Dynaconf
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

REPO_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_SECRET = "change-me"  # noqa: S105 - the placeholder the validator refuses
DEFAULT_SETTINGS_FILE = REPO_ROOT / "config" / "settings.toml"


class SiteType(StrEnum):
    MAIN = "main"
    SECONDARY = "secondary"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    site_name: str = Field(default="main", pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    site_type: SiteType = SiteType.MAIN
    development: bool = False

    main_db_url: str = "postgresql+asyncpg://ccat@127.0.0.1:5432/ccat"
    local_db_url: str = ""
    redis_url: str = ""

    log_level: str = "INFO"
    # json: one object per line with request and tx ids (for log shippers); text: terminals.
    log_format: str = Field(default="json", pattern=r"^(json|text)$")
    access_log: bool = True

    db_connect_timeout_s: float = Field(default=5.0, gt=0)
    db_pool_size: int = Field(default=10, ge=1)
    main_statement_timeout_s: float = Field(default=60.0, gt=0)

    token_cache_ttl_s: float = Field(default=30.0, ge=0)
    reference_cache_ttl_s: float = Field(default=30.0, ge=0)

    tx_status_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    idempotency_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)

    run_processor: bool = False

    processor_batch_size: int = Field(default=5000, ge=1, le=20000)
    processor_poll_interval_s: float = Field(default=0.05, gt=0)
    processor_lease_ttl_s: float = Field(default=10.0, gt=0)
    processor_backoff_initial_s: float = Field(default=0.2, gt=0)
    processor_backoff_max_s: float = Field(default=30.0, gt=0)
    processor_main_timeout_s: float = Field(default=30.0, gt=0)

    tracker_poll_interval_s: float = Field(default=0.01, gt=0)
    tracker_replica_timeout_s: float = Field(default=2.0, gt=0)

    health_probe_timeout_s: float = Field(default=2.0, gt=0)
    require_durable_redis: bool = True

    # Writes that are not buffered (tokens, users, logins) go to main; past this they fail
    # with 503 instead of hanging on a dead link.
    main_request_timeout_s: float = Field(default=10.0, gt=0)

    # --- live monitoring -------------------------------------------------------------------
    # A monitor connection is closed (code 4000, "reconnect") after this long, so credentials
    # are checked again and no connection outlives a revoked token by more than this.
    ws_max_lifetime_s: float = Field(default=3600.0, gt=0)
    # Frames a monitor may fall behind before it is dropped (code 1013) as a slow consumer.
    ws_queue_size: int = Field(default=256, ge=1)
    ws_ticket_ttl_s: int = Field(default=30, ge=5, le=600)
    # Events this close together share one fan-out pass and one frame per monitor.
    ws_linger_s: float = Field(default=0.02, ge=0, le=1)
    live_status_interval_s: float = Field(default=1.0, gt=0)
    live_overview_interval_s: float = Field(default=5.0, gt=0)
    live_debounce_s: float = Field(default=0.25, ge=0)

    # --- access ----------------------------------------------------------------------------
    public_url: str = "http://127.0.0.1:8000"
    session_secret: str = PLACEHOLDER_SECRET
    access_token_ttl_s: int = Field(default=900, ge=30)
    refresh_token_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    post_login_redirect: str = "/auth/me"
    token_usage_flush_s: float = Field(default=30.0, gt=0)

    github_client_id: str = ""
    github_client_secret: str = ""
    github_org_name: str = ""
    github_team_roles: dict[str, str] = Field(default_factory=dict)
    github_default_role: str | None = None
    github_oauth_url: str = "https://github.com"
    github_api_url: str = "https://api.github.com"

    @field_validator("github_default_role", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Self:
        if self.development:
            return self
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
    def _secondary_needs_local_services(self) -> Self:
        if self.site_type is SiteType.SECONDARY:
            missing = [name for name in ("local_db_url", "redis_url") if not getattr(self, name)]
            if missing:
                raise ValueError(
                    f"site_type=secondary needs {', '.join(missing)} (the local replica and Redis)"
                )
        return self

    @property
    def is_secondary(self) -> bool:
        return self.site_type is SiteType.SECONDARY

    @property
    def read_db_url(self) -> str:
        """Where reads go: the local replica at a secondary site, main otherwise."""
        return self.local_db_url if self.is_secondary else self.main_db_url


def load_settings(
    settings_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Read the layered configuration; ``overrides`` win over every source (tests, CLI flags)."""
    path = settings_file or Path(os.environ.get("CCAT_SETTINGS_FILE", DEFAULT_SETTINGS_FILE))
    layered = Dynaconf(
        settings_files=[str(path)] if path.exists() else [],
        environments=True,
        # dynaconf would otherwise silently layer [development] when CCAT_ENV is unset.
        env=os.environ.get("CCAT_ENV", "default"),
        envvar_prefix="CCAT",
        load_dotenv=True,
    )
    values = {key.lower(): value for key, value in layered.as_dict().items()}
    values.update(overrides or {})
    return Settings.model_validate(values)
