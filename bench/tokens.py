"""Service tokens the benchmarks issue on main before they send anything: an operator's for
writes (``bench.run`` and the benchmarks that reuse its pieces) and, for ``bench.ws_fanout``,
an observer's for the WebSocket monitors."""

from __future__ import annotations

import asyncio

from ccat_api.db.models import Role
from ccat_api.devstack.stack import Stack
from ccat_api.devstack.tokens import issue_tokens


def issue_operator_token(stack: Stack) -> str:
    wanted = {"bench-operator": Role.OPERATOR.value}
    return asyncio.run(issue_tokens(stack, wanted, application_name="bench"))["bench-operator"]


def issue_ws_tokens(stack: Stack) -> tuple[str, str]:
    """An operator token for the writes and an observer token (read:buffer) for monitors."""
    wanted = {"bench-ws-writer": Role.OPERATOR.value, "bench-ws-monitor": Role.OBSERVER.value}
    issued = asyncio.run(issue_tokens(stack, wanted, application_name="bench"))
    return issued["bench-ws-writer"], issued["bench-ws-monitor"]
