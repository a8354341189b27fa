"""The verdict: the clients' history set against what main and the site hold once the site
has drained. Pure (no I/O), so hand-made histories prove each rule can fail.

- lost: acknowledged, yet its record (or its transaction) is not on main;
- duplicated: a marker on two records, or more transactions applied than writes present;
- order: the site's transactions applied out of acceptance order (applied_transactions by
  batch, then seq), a seq applied twice, or a life cycle's writes applied out of its order;
- read your writes: a read at the site, right after an acknowledgement or after the drain,
  that answered without the record;
- ambiguous writes resolve to applied once or not at all; a refusal must leave no trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ccat_api.devstack.chaos.history import History, Probe, Write


@dataclass(frozen=True)
class AppliedTx:
    tx_id: str
    seq: int
    applied_at: float  # one value per batch: now() of the batch's transaction on main


@dataclass
class MainState:
    """Main after the drain. ``markers``: how many records carry each marker (a write's key;
    ``{key}/{i}`` for the i-th new file of a package). ``applied``: the site's rows of
    applied_transactions."""

    markers: dict[str, int]
    applied: list[AppliedTx]


@dataclass
class SiteState:
    dead_letters: int
    unsettled: int  # transactions the site would still send to main
    awaiting_replica: int  # applied, not yet shown by the site's replica
    not_visible: list[str] = field(default_factory=list)  # acknowledged tx_ids not 'visible'
    final_reads: list[Probe] = field(default_factory=list)


@dataclass
class Report:
    writes: int = 0
    acknowledged: int = 0
    refused: int = 0
    ambiguous: int = 0
    ambiguous_applied: int = 0
    ambiguous_not_applied: int = 0
    lost: int = 0
    duplicated: int = 0
    order: int = 0
    ryw: int = 0
    probes: int = 0
    probes_unavailable: int = 0
    dead_letters: int = 0
    not_drained: int = 0
    refused_applied: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def violations(self) -> int:
        # A refusal counts: every request of the workload is valid and names only records
        # the site acknowledged, so a 4xx means the site failed to see its own write.
        return (
            self.lost
            + self.duplicated
            + self.order
            + self.ryw
            + self.dead_letters
            + self.not_drained
            + self.refused
            + self.refused_applied
        )

    @property
    def ok(self) -> bool:
        return self.violations == 0


def file_markers(write: Write) -> list[str]:
    return [f"{write.key}/{i}" for i in range(write.files)]


def check(history: History, main: MainState, site: SiteState) -> Report:
    report = Report(writes=len(history.writes))
    applied_ids = {tx.tx_id for tx in main.applied}
    for write in history.writes:
        count = main.markers.get(write.key, 0)
        _check_write(report, write, count, applied_ids)
        if count:
            _check_package_files(report, write, main)
    _check_accounting(report, main, history.writes)
    _check_site_order(report, main.applied)
    _check_unit_order(report, history.writes, main.applied)
    for probe in [*history.probes, *site.final_reads]:
        report.probes += 1
        if probe.result == "unavailable":
            report.probes_unavailable += 1
        elif probe.result == "violation":
            report.ryw += 1
            report.problems.append(f"read your writes: {probe.kind} {probe.key}: {probe.detail}")
    report.dead_letters = site.dead_letters
    if site.dead_letters:
        report.problems.append(f"{site.dead_letters} dead letters at the site")
    report.not_drained = site.unsettled + site.awaiting_replica + len(site.not_visible)
    if report.not_drained:
        report.problems.append(
            f"not drained: {site.unsettled} unsettled, {site.awaiting_replica} awaiting the"
            f" replica, {len(site.not_visible)} acknowledged not visible"
            f" (e.g. {site.not_visible[:3]})"
        )
    return report


def _check_write(report: Report, write: Write, count: int, applied_ids: set[str]) -> None:
    if count > 1:
        report.duplicated += 1
        report.problems.append(f"duplicated: {write.kind} {write.key} on {count} records")
    if write.outcome == "acknowledged":
        report.acknowledged += 1
        if count == 0:
            report.lost += 1
            report.problems.append(
                f"lost: {write.kind} {write.key} ({write.record_id}) not on main"
            )
        elif write.tx_id is not None and write.tx_id not in applied_ids:
            report.lost += 1
            report.problems.append(
                f"lost: {write.kind} {write.key} tx {write.tx_id} not in applied_transactions"
            )
    elif write.outcome == "refused":
        report.refused += 1
        report.problems.append(f"refused: {write.kind} {write.key} {write.status} {write.detail}")
        if count:
            report.refused_applied += 1
            report.problems.append(f"refused but applied: {write.kind} {write.key}")
    else:
        report.ambiguous += 1
        if count:
            report.ambiguous_applied += 1
        else:
            report.ambiguous_not_applied += 1


def _check_package_files(report: Report, write: Write, main: MainState) -> None:
    """A package and its new files are one transaction: all on main once, or none."""
    for marker in file_markers(write):
        count = main.markers.get(marker, 0)
        if count == 0:
            report.lost += 1
            report.problems.append(f"lost: file {marker} of an applied package")
        elif count > 1:
            report.duplicated += 1
            report.problems.append(f"duplicated: file {marker} on {count} records")


def _check_accounting(report: Report, main: MainState, writes: list[Write]) -> None:
    """Every write present on main is one transaction. The transactions of acknowledged
    writes are known by id; the others must match the unacknowledged writes present, one
    each: more means an intent applied twice (an update leaves one marker however often it
    applies), fewer means records on main that applied_transactions does not account for."""
    known = {w.tx_id for w in writes if w.outcome == "acknowledged"}
    unknown = sum(tx.tx_id not in known for tx in main.applied)
    present = sum(w.outcome != "acknowledged" and main.markers.get(w.key, 0) > 0 for w in writes)
    if unknown > present:
        report.duplicated += unknown - present
        report.problems.append(
            f"duplicated: {unknown} transactions applied for {present} unacknowledged writes"
            " present on main"
        )
    elif unknown < present:
        report.lost += present - unknown
        report.problems.append(
            f"bookkeeping: {present} unacknowledged writes on main, {unknown} transactions"
        )


def applied_order(applied: list[AppliedTx]) -> list[AppliedTx]:
    return sorted(applied, key=lambda tx: (tx.applied_at, tx.seq))


def _check_site_order(report: Report, applied: list[AppliedTx]) -> None:
    seen: set[int] = set()
    highest = -1
    for tx in applied_order(applied):
        if tx.seq in seen:
            report.order += 1
            report.problems.append(f"order: seq {tx.seq} applied twice (tx {tx.tx_id})")
        elif tx.seq < highest:
            report.order += 1
            report.problems.append(
                f"order: seq {tx.seq} (tx {tx.tx_id}) applied after seq {highest}"
            )
        seen.add(tx.seq)
        highest = max(highest, tx.seq)


def _check_unit_order(report: Report, writes: list[Write], applied: list[AppliedTx]) -> None:
    """A life cycle's acknowledged writes apply in the order its client made them (a file
    never before its unit, a finish never before its start)."""
    position = {tx.tx_id: i for i, tx in enumerate(applied_order(applied))}
    last: dict[str, tuple[int, Write]] = {}
    for write in writes:  # in each unit's own order: one client drives a unit
        if write.outcome != "acknowledged" or write.tx_id not in position:
            continue
        here = position[write.tx_id]
        before = last.get(write.unit)
        if before is not None and here < before[0]:
            report.order += 1
            report.problems.append(
                f"order: {write.kind} {write.key} applied before {before[1].kind}"
                f" {before[1].key} of the same unit"
            )
        if before is None or here > before[0]:
            last[write.unit] = (here, write)
