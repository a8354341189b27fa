"""Who may use the gateway and how they log in: session signing, token lifetimes and the
GitHub login, a group of settings that ``config.Settings`` inherits (its one source of
defaults, like every other setting)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

PLACEHOLDER_SECRET = "change-me"  # noqa: S105 - the placeholder the validator refuses


class AccessSettings(BaseModel):
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The gateway's external URL (GitHub redirects back to"
        " <public_url>/auth/github/callback).",
    )
    session_secret: str = Field(
        default=PLACEHOLDER_SECRET,
        description="Signs session tokens: random, 32 characters or more, the same at every"
        " site. The placeholder is refused unless development is true.",
    )
    access_token_ttl_s: int = Field(
        default=900, ge=30, description="Lifetime of a session's access token."
    )
    refresh_token_ttl_s: int = Field(
        default=30 * 24 * 3600, ge=60, description="Lifetime of a session's refresh token."
    )
    post_login_redirect: str = Field(
        default="/auth/me",
        description="Where the browser lands after logging in (the refresh token is in an"
        " HttpOnly cookie).",
    )
    token_usage_flush_s: float = Field(
        default=30.0,
        gt=0,
        description="How often API tokens' last-used times are written to main (in the"
        " background).",
    )

    github_client_id: str = Field(
        default="",
        description="The GitHub OAuth app's client id; GitHub login is offered when it and the"
        " organisation are set.",
    )
    github_client_secret: str = Field(default="", description="The GitHub OAuth app's secret.")
    github_org_name: str = Field(
        default="", description="The GitHub organisation whose members may log in."
    )
    github_team_roles: dict[str, str] = Field(
        default_factory=dict,
        description='Team slug -> role, as JSON ({"telescope-operators": "operator"}); the'
        " highest role among a person's teams wins.",
    )
    github_default_role: str | None = Field(
        default=None,
        description="Role for organisation members in no mapped team (empty: such members are"
        " refused).",
    )
    github_oauth_url: str = Field(
        default="https://github.com", description="Where GitHub's OAuth pages are."
    )
    github_api_url: str = Field(
        default="https://api.github.com", description="Where GitHub's REST API is."
    )

    @field_validator("github_default_role", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value
