"""The campaign's figures as a table, and the line that replays a seed."""

from __future__ import annotations

from collections import Counter

from ccat_api.devstack.chaos.checker import Report
from ccat_api.devstack.chaos.history import History

MAX_PROBLEMS = 25


def replay_command(seed: int, writes: int, faults: int, clients: int, mean_gap_s: float) -> str:
    """The same schedule (seed, fault count, gap) and the same clients' choices."""
    return (
        f".venv/bin/python -m ccat_api.devstack.chaos --seed {seed} --writes {writes}"
        f" --faults {faults} --clients {clients} --mean-gap-s {mean_gap_s:g}"
    )


def render(report: Report, history: History, seed: int, duration_s: float) -> str:
    by_kind = Counter(f.kind for f in history.faults)
    acknowledged = [w for w in history.writes if w.outcome == "acknowledged"]
    rows = [
        ("seed", str(seed)),
        ("duration", f"{duration_s:.0f} s"),
        ("writes", str(report.writes)),
        ("faults", str(len(history.faults))),
        *((f"  {kind}", str(n)) for kind, n in sorted(by_kind.items())),
        *((f"  {kind}", "not available") for kind in history.skipped_faults),
        ("acknowledged", str(report.acknowledged)),
        ("  after a retry", str(sum(w.attempts > 1 for w in acknowledged))),
        ("  after an attempt without answer", str(sum(w.unanswered > 0 for w in acknowledged))),
        ("ambiguous", str(report.ambiguous)),
        ("  applied once", str(report.ambiguous_applied)),
        ("  not applied", str(report.ambiguous_not_applied)),
        ("refused", str(report.refused)),
        ("lost", str(report.lost)),
        ("duplicated", str(report.duplicated)),
        ("order violations", str(report.order)),
        ("read-your-writes violations", str(report.ryw)),
        ("  probes (unavailable)", f"{report.probes} ({report.probes_unavailable})"),
        ("dead letters", str(report.dead_letters)),
        ("not drained", str(report.not_drained)),
        ("verdict", "PASS" if report.ok else f"FAIL ({report.violations} violations)"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    if report.problems:
        lines.append("problems:")
        lines += [f"  {p}" for p in report.problems[:MAX_PROBLEMS]]
        if len(report.problems) > MAX_PROBLEMS:
            lines.append(f"  ... and {len(report.problems) - MAX_PROBLEMS} more")
    return "\n".join(lines)


def fault_log(history: History) -> str:
    return "\n".join(
        f"  {f.at_s:7.1f} s  {f.kind:<15} {f.duration_s:5.1f} s  {f.note}"
        for f in sorted(history.faults, key=lambda f: f.at_s)
    )
