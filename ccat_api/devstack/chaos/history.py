"""What the campaign's clients did and were told, recorded as it happens: one ``Write`` per
intent (however many attempts it took), one ``Probe`` per read-your-writes check, one
``FaultRecord`` per injected fault. Pure data; the checker reads nothing else from the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["start", "file", "package", "finish"]
# acknowledged: a 2xx answer; refused: a 4xx answer (the write was judged and turned down);
# ambiguous: no definite answer before the client gave up (timeouts, dropped connections,
# 5xx to the end), so the write may or may not have been taken.
Outcome = Literal["acknowledged", "refused", "ambiguous"]
# ok: the read showed the write; violation: it answered without it (or wrongly);
# unavailable: no answer (5xx, transport error), which says nothing either way.
ProbeResult = Literal["ok", "violation", "unavailable"]


@dataclass
class Write:
    """One write intent of a life cycle. ``key`` is its Idempotency-Key, and the record it
    creates or changes carries the key as a marker, so main can be asked for it even when
    the client never learnt an id."""

    unit: str  # the life cycle (the start's key)
    kind: Kind
    key: str
    outcome: Outcome = "ambiguous"
    status: int | None = None  # the last HTTP status seen, None: no answer at all
    record_id: str | None = None
    tx_id: str | None = None
    attempts: int = 0
    unanswered: int = 0  # attempts that got no answer (timeout, connection refused or cut)
    # Records the write creates that carry a marker derived from the key (a package's files).
    files: int = 0
    detail: str = ""


@dataclass
class Probe:
    key: str  # the write whose record the read looked for
    kind: Kind
    result: ProbeResult
    detail: str = ""


@dataclass
class FaultRecord:
    kind: str
    at_s: float  # from the start of the workload
    duration_s: float
    note: str = ""


@dataclass
class History:
    writes: list[Write] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    skipped_faults: list[str] = field(default_factory=list)  # kinds this stack cannot inject
