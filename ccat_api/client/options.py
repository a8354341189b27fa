"""How both clients set up httpx: base URL, bearer token, timeouts, a User-Agent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

USER_AGENT = "ccat-api-client/0.1"


def http_options(
    base_url: str,
    token: str,
    timeout_s: float,
    connect_timeout_s: float,
    headers: Mapping[str, str] | None,
) -> dict[str, Any]:
    if not token:
        raise ValueError("a token is required (an API token or a session access token)")
    return {
        "base_url": base_url,
        "headers": {
            "Authorization": f"Bearer {token}",
            "User-Agent": USER_AGENT,
            **(headers or {}),
        },
        # A read timeout is retried like a cut connection. The Idempotency-Key makes that
        # safe: one too short costs repeated requests, never a repeated write.
        "timeout": httpx.Timeout(timeout_s, connect=connect_timeout_s),
    }
