"""How the gateway process runs: its logs, the path a proxy serves it under, its database
connections and statement bound, and how long its in-process caches keep what they read.
A group of settings that ``config.Settings`` inherits (its one source of defaults, like
every other setting)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator


class ServiceSettings(BaseModel):
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
    tls_cert_file: Path | None = Field(
        default=None,
        description="`ccat-api serve` answers HTTPS with this certificate (PEM, the chain"
        " after it) and tls_key_file; empty: plain HTTP, for a reverse proxy in front.",
    )
    tls_key_file: Path | None = Field(
        default=None,
        description="The certificate's private key (PEM); mode 0600, refused outside"
        " development if its group or others may read it.",
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

    @field_validator("tls_cert_file", "tls_key_file", mode="before")
    @classmethod
    def _no_tls_file_when_empty(cls, value: object) -> object:
        return None if value == "" else value
