"""Redis replies as our code sees them. Our clients never set decode_responses, so replies
are bytes; redis-py types them loosely (bytes or str), and these helpers narrow them."""

from __future__ import annotations

from typing import Any


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def text_map(value: Any) -> dict[str, str]:
    return {text(k): text(v) for k, v in dict(value).items()}
