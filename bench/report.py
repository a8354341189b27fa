"""Figures, their targets and the final table: each row says whether the figure meets its
target, and by what ratio. Nothing here fails a run; a missed target is only printed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Goal:
    """A target: ``value`` must be at most (``<=``) or at least (``>=``) ``limit``."""

    op: str
    limit: float

    def met_by(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def ratio(self, value: float) -> float:
        """value / limit: at most 1 meets a ``<=`` goal, at least 1 meets a ``>=`` goal."""
        return value / self.limit if self.limit else float("nan")

    def __str__(self) -> str:
        return f"{self.op} {_number(self.limit)}"


@dataclass(frozen=True)
class Row:
    key: str
    figure: str
    value: float
    unit: str
    goal: Goal | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return ""
        return "meets" if self.goal.met_by(self.value) else "misses"

    def as_dict(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "value": None if math.isnan(self.value) else round(self.value, 3),
            "unit": self.unit,
            "target": str(self.goal) if self.goal else None,
            "ratio": round(self.goal.ratio(self.value), 3) if self.goal else None,
            "verdict": self.verdict or None,
            "note": self.note or None,
        }


def _number(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(rows: list[Row], header: str) -> str:
    columns = ("figure", "value", "unit", "target", "ratio", "verdict")
    cells = [
        (
            r.figure,
            _number(r.value),
            r.unit,
            str(r.goal) if r.goal else "",
            f"{r.goal.ratio(r.value):.2f}" if r.goal and not math.isnan(r.value) else "",
            r.verdict,
        )
        for r in rows
    ]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    right = {1, 4}

    def line(values: tuple[str, ...]) -> str:
        return "  ".join(
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    rule = "-" * len(line(tuple("-" * w for w in widths)))
    out = [header, rule, line(columns), rule, *(line(c) for c in cells), rule]
    notes = [f"  {r.figure}: {r.note}" for r in rows if r.note]
    if notes:
        out += ["notes:", *notes]
    return "\n".join(out)
