"""One typed Settings object for the whole service; the model is where every default lives.

``load_settings()`` layers, highest last: the model's defaults, the settings file's [default]
and then the section named by ``CCAT_ENV`` (dynaconf), ``.env``, ``CCAT_*`` environment
variables, then explicit overrides. pydantic validates the result, so a wrong value fails at
start with the field's name, and a name that is no setting is refused with the nearest one.
``Settings(...)`` takes its arguments and the defaults only.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

import limits
from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ccat_api.config_access import PLACEHOLDER_SECRET, AccessSettings
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


# host:port, as Sentinel itself and redis-cli write it; refused at start, not at first use.
SentinelAddress = Annotated[str, Field(pattern=r"^\S+:\d{1,5}$")]


class SiteType(StrEnum):
    MAIN = "main"
    SECONDARY = "secondary"


class Settings(StatusSettings, AccessSettings, BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", env_prefix=ENV_PREFIX, env_file=".env"
    )

    site_name: str = Field(
        default="main",
        pattern=r"^[a-z][a-z0-9_-]{0,39}$",
        description="Name of this site; namespaces every Redis key and is recorded in every"
        " envelope.",
    )
    site_type: SiteType = Field(
        default=SiteType.MAIN,
        description="main: reads and writes go straight to the main database. secondary:"
        " critical writes are buffered in Redis and replayed on main; reads merge the replica.",
    )
    development: bool = Field(
        default=False,
        description="Development conveniences: the ccat-dev-token admin token and the"
        " placeholder session secret (never enable at a real site).",
    )

    main_db_url: str = Field(
        default="postgresql+asyncpg://ccat@127.0.0.1:5432/ccat",
        description="The authoritative main database (over the WAN at a secondary site).",
    )
    local_db_url: str = Field(
        default="",
        description="The site's local streaming replica (secondary sites only; empty at main).",
    )
    redis_url: str = Field(
        default="",
        description="The site's Redis, with AOF and appendfsync always. A secondary site buffers"
        " in it; at main it carries live monitoring across workers. With redis_sentinels set,"
        " only its database number and credentials are used: Sentinel names the primary.",
    )
    redis_sentinels: list[SentinelAddress] = Field(
        default_factory=list,
        description='The site\'s Redis Sentinels, as JSON (["10.0.0.5:26379", ...]); set, the'
        " gateway, processor and CLI find the buffer's primary through them and follow a"
        " failover.",
    )
    redis_sentinel_service: str = Field(
        default="ccat-buffer", description="The name the Sentinels monitor the primary under."
    )
    buffer_min_replicas: int | None = Field(
        default=None,
        ge=0,
        description="Replicas that must confirm a critical write (Redis WAIT) before it is"
        " answered; empty: 1 with Sentinels, 0 with a single Redis. Too few: a 503 that says so.",
    )
    buffer_replica_timeout_ms: int = Field(
        default=1000, ge=1, description="How long a write waits for those replicas."
    )

    log_level: str = Field(
        default="INFO", description="Logging level: DEBUG, INFO, WARNING or ERROR."
    )
    log_format: str = Field(
        default="json",
        pattern=r"^(json|text)$",
        description="json: one object per line with request and tx ids (for log shippers);"
        " text: for a terminal.",
    )
    access_log: bool = Field(
        default=True,
        description="One log line per HTTP request (method, route, status, duration, request"
        " and tx ids).",
    )
    root_path: str = Field(
        default="",
        pattern=r"^(/[A-Za-z0-9._~-]+)*$",
        description="The path prefix a reverse proxy serves the gateway under ('/ccat'), which"
        " the proxy strips before forwarding; `ccat-api serve` gives it to uvicorn, so /docs"
        " and the OpenAPI name the URLs clients use. Empty: served at /.",
    )

    db_connect_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="Bound on opening a database connection; past it a request answers 503"
        " with Retry-After instead of hanging.",
    )
    db_pool_size: int = Field(
        default=10, ge=1, description="Connections each database engine keeps per process."
    )
    main_statement_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Upper bound on one replay batch statement on main; past it the batch is"
        " retried.",
    )

    token_cache_ttl_s: float = Field(
        default=30.0,
        ge=0,
        description="How long a validated API token stays cached in-process (a revoked token"
        " works at most this much longer).",
    )
    reference_cache_ttl_s: float = Field(
        default=30.0,
        ge=0,
        description="How long reference data (obs units, instrument modules) stays cached for"
        " validation.",
    )

    tx_status_ttl_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="How long a transaction's status stays readable after it became visible"
        " (operators look transactions up long after they drained).",
    )
    idempotency_ttl_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="How long an Idempotency-Key answer is remembered (then, at main, a"
        " tombstone: a retry of the key is refused with a 409 naming it).",
    )
    idempotency_tombstone_ttl_s: int = Field(
        default=365 * 24 * 3600,
        ge=60,
        description="Main site: how long a used Idempotency-Key stays refused once its answer"
        " is gone. After this a retry of the key is a new request.",
    )
    retention_horizon_s: int = Field(
        default=30 * 24 * 3600,
        ge=60,
        description="Main site: applied_transactions rows older than this, and below their"
        " site's reported watermark, are pruned; a replay of one is still refused.",
    )
    prune_interval_s: float = Field(
        default=3600.0,
        ge=0,
        description="Main site: how often the gateway prunes applied_transactions and"
        " idempotency_records (0: never; run `ccat-api prune` from cron instead).",
    )

    run_processor: bool = Field(
        default=False,
        description="Run the processor and LSN tracker inside the gateway (one active per site"
        " via a lease) instead of as `ccat-api process`.",
    )

    processor_batch_size: int = Field(
        default=5000,
        ge=1,
        le=20000,
        description="Transactions per replay batch (one DB transaction, two WAN round trips).",
    )
    processor_poll_interval_s: float = Field(
        default=0.05, gt=0, description="Pause between looks at an empty buffer."
    )
    processor_lease_ttl_s: float = Field(
        default=10.0,
        gt=0,
        description="Processor lease lifetime; a dead processor's lease expires after this and"
        " another takes over.",
    )
    processor_backoff_initial_s: float = Field(
        default=0.2,
        gt=0,
        description="First pause of the capped exponential backoff after a transient failure"
        " (transient failures are never dead-lettered).",
    )
    processor_backoff_max_s: float = Field(default=30.0, gt=0, description="Cap of that backoff.")
    main_standby_names: list[str] = Field(
        default_factory=list,
        description=(
            "Main's standbys (their application_name, e.g. Patroni member names) whose flush"
            " position makes a replayed batch durable: the site keeps each applied"
            " transaction's envelope until every one of them has it, and replays those main"
            " lost in a failover. Empty: main has no standby, or commits synchronously to it"
            " (Patroni synchronous_mode), and a commit is durable at once."
        ),
    )
    schema_hold_retry_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "While the replay is held on a schema disagreement with main (an envelope version"
            " main does not apply, or schema drift), how often it tries again."
        ),
    )
    backlog_report_interval_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "How often the processor tells main what the site holds (oldest pending envelope"
            " version, count), which migrations' contract steps read."
        ),
    )
    processor_main_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Timeout for one round trip to main (connect, batch, LSN read).",
    )

    tracker_poll_interval_s: float = Field(
        default=0.01,
        gt=0,
        description="Replica replay-LSN poll while anything waits to become visible.",
    )
    tracker_replica_timeout_s: float = Field(
        default=2.0, gt=0, description="Timeout for one replay-LSN read on the replica."
    )

    health_probe_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="Bound on each dependency probe behind GET /health and the site status.",
    )
    require_durable_redis: bool = Field(
        default=True,
        description="Refuse critical writes (503) while a Redis of the site does not fsync its"
        " AOF on every write or may evict keys, and refuse to start when it answers so at"
        " start; checked at start and every 30 s.",
    )
    buffer_max_memory_fraction: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Backpressure: critical writes get 503 (with Retry-After) once the site's"
        " Redis uses this fraction of its maxmemory, before Redis itself refuses writes;"
        " no limit applies while maxmemory is 0 (unset). Read from INFO memory at most"
        " every 0.5 s.",
    )
    write_rate_limit: str = Field(
        default="",
        description="Critical writes allowed per token, in the `limits` library's notation"
        " ('50/second', '1000 per minute'); more get 429 with Retry-After. Counted in the"
        " site's Redis (in this process where the site has none); empty: no limit (the"
        " settings file's main and secondary sections set 50/second).",
    )
    main_request_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Writes that are not buffered (tokens, users, logins) go to main; past this"
        " they fail with 503 instead of hanging on a dead link.",
    )

    # --- live monitoring -------------------------------------------------------------------
    ws_max_lifetime_s: float = Field(
        default=3600.0,
        gt=0,
        description="A monitor connection is closed (code 4000, reconnect) after this long, so"
        " credentials are checked again and no connection outlives a revoked token by more.",
    )
    ws_queue_size: int = Field(
        default=256,
        ge=1,
        description="Frames a monitor may fall behind before it is dropped (code 1013) as a"
        " slow consumer.",
    )
    ws_ticket_ttl_s: int = Field(
        default=30,
        ge=5,
        le=600,
        description="Lifetime of a single-use ticket from POST /api/ws/tickets (browsers' way"
        " to authenticate).",
    )
    ws_linger_s: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="Events this close together share one fan-out pass and one frame per"
        " monitor: less CPU per event under load, at most this much added latency. 0 sends"
        " each event at once.",
    )
    live_status_interval_s: float = Field(
        default=1.0, gt=0, description="Period of the buffer-status stream."
    )
    live_overview_interval_s: float = Field(
        default=5.0, gt=0, description="Refresh period of the transfer overview."
    )
    live_debounce_s: float = Field(
        default=0.25,
        ge=0,
        description="Pause that folds a burst of events into one recomputation.",
    )
    history_interval_s: float = Field(
        default=10.0,
        ge=1,
        description="The console's charts: one sample of the site status (buffer depth, accept"
        " and drain rates, replica lag, oldest pending age) this often, kept in the site's"
        " Redis (in each process where the site has none), one per period for the site.",
    )
    history_retention_s: int = Field(
        default=6 * 3600,
        ge=60,
        le=7 * 24 * 3600,
        description="How far back those samples reach: retention / interval samples at most.",
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

    @field_validator("buffer_min_replicas", mode="before")
    @classmethod
    def _empty_is_automatic(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("write_rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        value = value.strip()
        if value:
            try:
                limits.parse(value)
            except ValueError as exc:
                raise ValueError(
                    f"{value!r} is not a rate limit; write it like '50/second' or"
                    " '1000 per minute' (empty: no limit)"
                ) from exc
        return value

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
            missing = [name for name in ("local_db_url",) if not getattr(self, name)]
            if not self.redis_url and not self.redis_sentinels:
                missing.append("redis_url")
            if missing:
                raise ValueError(
                    f"site_type=secondary needs {', '.join(missing)} (the local replica and Redis)"
                )
        return self

    @property
    def min_replicas(self) -> int:
        """Replicas a critical write waits for: as set, else one where Sentinel runs the site's
        Redis (a primary and at least one replica), else none."""
        if self.buffer_min_replicas is not None:
            return self.buffer_min_replicas
        return 1 if self.redis_sentinels else 0

    @property
    def is_secondary(self) -> bool:
        return self.site_type is SiteType.SECONDARY

    @property
    def read_db_url(self) -> str:
        """Where reads go: the local replica at a secondary site, main otherwise."""
        return self.local_db_url if self.is_secondary else self.main_db_url


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
