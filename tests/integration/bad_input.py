"""What the bad-input tests (invariant 9) share: how a refusal names its field, and the
traces it must not leave (the buffer empty, main's row counts unchanged)."""

from __future__ import annotations

from typing import Any

import httpx

from ccat_api.db.models import Base
from ccat_api.devstack.stack import Stack
from tests.support import fetch

EMPTY = {"stream": 0, "overlay": 0, "dead": 0, "awaiting_replica": 0, "idempotency": 0}


async def main_row_counts(stack: Stack) -> dict[str, int]:
    tables = sorted(Base.metadata.tables)
    query = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in tables)
    return {r[0]: int(r[1]) for r in await fetch(stack.main_db.dsn(), query)}


def answer_of(r: httpx.Response) -> dict[str, Any]:
    if not r.headers.get("content-type", "").startswith("application/json"):
        return {}
    found = r.json()
    return found if isinstance(found, dict) else {}


def error_fields(r: httpx.Response) -> set[str]:
    answer = answer_of(r)
    return {answer.get("field") or ""} | {e["field"] for e in answer.get("errors", [])}
