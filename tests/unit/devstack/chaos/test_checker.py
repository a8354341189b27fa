"""The checker on hand-made histories: a clean one passes, and each kind of violation it
exists for (lost, duplicated, out of order, a read that missed its write, a dead letter, a
refusal) is reported, named and counted."""

from __future__ import annotations

from ccat_api.devstack.chaos.checker import AppliedTx, MainState, Report, SiteState, check
from ccat_api.devstack.chaos.history import History, Probe, Write


def life_cycle() -> History:
    """One unit: start, one file, a package with two new files, finish; all acknowledged."""
    writes = [
        Write("u", "start", "u", "acknowledged", 201, "id-u", "tx-1"),
        Write("u", "file", "u-f0", "acknowledged", 201, "id-f", "tx-2"),
        Write("u", "package", "u-p", "acknowledged", 201, "id-p", "tx-3", files=2),
        Write("u", "finish", "u-x", "acknowledged", 200, "id-u", "tx-4"),
    ]
    probes = [Probe(w.key, w.kind, "ok") for w in writes]
    return History(writes=writes, probes=probes)


def main_of(history: History) -> MainState:
    """Main as it should be: every acknowledged write once, applied in two batches."""
    markers = {w.key: 1 for w in history.writes if w.outcome == "acknowledged"}
    markers.update({"u-p/0": 1, "u-p/1": 1})
    applied = [AppliedTx("tx-1", 1, 100.0), AppliedTx("tx-2", 2, 100.0)]
    applied += [AppliedTx("tx-3", 3, 101.0), AppliedTx("tx-4", 4, 101.0)]
    return MainState(markers, applied)


def drained_site() -> SiteState:
    return SiteState(dead_letters=0, unsettled=0, awaiting_replica=0)


def verdict(history: History, main: MainState, site: SiteState | None = None) -> Report:
    return check(history, main, site or drained_site())


def test_a_clean_history_passes() -> None:
    history = life_cycle()
    report = verdict(history, main_of(history))
    assert report.ok, report.problems
    assert (report.writes, report.acknowledged, report.probes) == (4, 4, 4)


def test_an_acknowledged_record_missing_on_main_is_lost() -> None:
    history = life_cycle()
    main = main_of(history)
    del main.markers["u-f0"]
    main.applied = [tx for tx in main.applied if tx.tx_id != "tx-2"]
    report = verdict(history, main)
    assert report.lost == 1
    assert not report.ok
    assert any("lost: file u-f0" in p for p in report.problems)


def test_a_record_whose_transaction_main_does_not_list_is_lost() -> None:
    history = life_cycle()
    main = main_of(history)
    main.applied = [tx for tx in main.applied if tx.tx_id != "tx-4"]
    assert verdict(history, main).lost == 1


def test_a_package_applied_without_one_of_its_files_is_lost() -> None:
    history = life_cycle()
    main = main_of(history)
    del main.markers["u-p/1"]
    report = verdict(history, main)
    assert report.lost == 1
    assert any("u-p/1" in p for p in report.problems)


def test_a_marker_on_two_records_is_a_duplicate() -> None:
    history = life_cycle()
    main = main_of(history)
    main.markers["u"] = 2
    report = verdict(history, main)
    assert report.duplicated == 1
    assert any("duplicated: start u on 2 records" in p for p in report.problems)


def test_an_update_applied_twice_shows_as_a_transaction_too_many() -> None:
    """A finish applied again under a new tx_id leaves one marker; the count of transactions
    gives it away."""
    history = life_cycle()
    main = main_of(history)
    main.applied.append(AppliedTx("tx-again", 5, 102.0))
    assert verdict(history, main).duplicated == 1


def test_ambiguous_writes_resolve_to_applied_once_or_not_at_all() -> None:
    history = life_cycle()
    history.writes += [
        Write("v", "start", "v"),  # no answer, yet applied
        Write("w", "start", "w"),  # no answer, never applied
    ]
    main = main_of(history)
    main.markers["v"] = 1
    main.applied.append(AppliedTx("tx-v", 5, 102.0))
    report = verdict(history, main)
    assert report.ok, report.problems
    assert (report.ambiguous, report.ambiguous_applied, report.ambiguous_not_applied) == (2, 1, 1)


def test_an_ambiguous_write_applied_twice_is_a_duplicate() -> None:
    history = life_cycle()
    history.writes.append(Write("v", "start", "v"))
    main = main_of(history)
    main.markers["v"] = 2
    main.applied += [AppliedTx("tx-v", 5, 102.0), AppliedTx("tx-v2", 6, 103.0)]
    assert verdict(history, main).duplicated == 2  # two records, one transaction too many


def test_a_later_batch_holding_an_earlier_seq_is_an_order_violation() -> None:
    history = life_cycle()
    main = main_of(history)
    main.applied = [
        AppliedTx("tx-1", 1, 100.0),
        AppliedTx("tx-3", 3, 100.0),
        AppliedTx("tx-2", 2, 101.0),  # accepted before tx-3, applied after it
        AppliedTx("tx-4", 4, 101.0),
    ]
    report = verdict(history, main)
    # The site's order, and the unit's: its file after its package.
    assert report.order == 2
    assert any("seq 2" in p for p in report.problems)


def test_a_seq_applied_twice_is_an_order_violation() -> None:
    history = life_cycle()
    history.writes.append(Write("v", "start", "v"))
    main = main_of(history)
    main.markers["v"] = 1
    main.applied.append(AppliedTx("tx-v", 4, 102.0))
    report = verdict(history, main)
    assert report.order == 1
    assert any("seq 4 applied twice" in p for p in report.problems)


def test_a_finish_applied_before_its_start_is_an_order_violation() -> None:
    history = life_cycle()
    main = main_of(history)
    main.applied = [
        AppliedTx("tx-4", 4, 99.0),
        *(tx for tx in main.applied if tx.tx_id != "tx-4"),
    ]
    report = verdict(history, main)
    assert any("order: finish u-x applied before package u-p" in p for p in report.problems)
    assert report.order >= 2  # the unit's order and the site's


def test_a_read_that_missed_an_acknowledged_write_is_a_read_your_writes_violation() -> None:
    history = life_cycle()
    history.probes[1] = Probe("u-f0", "file", "violation", "404")
    history.probes.append(Probe("u-f0", "file", "unavailable", "503"))
    report = verdict(history, main_of(history))
    assert (report.ryw, report.probes_unavailable) == (1, 1)
    assert not report.ok


def test_a_read_after_the_drain_that_misses_a_record_is_a_violation() -> None:
    history = life_cycle()
    site = drained_site()
    site.final_reads = [Probe("u-f0", "file", "violation", "after the drain: read 0 times")]
    assert verdict(history, main_of(history), site).ryw == 1


def test_dead_letters_and_an_undrained_site_fail_the_run() -> None:
    history = life_cycle()
    site = SiteState(dead_letters=2, unsettled=1, awaiting_replica=0, not_visible=["tx-4"])
    report = verdict(history, main_of(history), site)
    assert (report.dead_letters, report.not_drained) == (2, 2)
    assert not report.ok


def test_a_refusal_fails_the_run_and_one_that_applied_is_named() -> None:
    history = life_cycle()
    history.writes.append(Write("v", "start", "v", "refused", 422, detail="obs unit"))
    main = main_of(history)
    main.markers["v"] = 1
    main.applied.append(AppliedTx("tx-v", 5, 102.0))
    report = verdict(history, main)
    assert (report.refused, report.refused_applied) == (1, 1)
    assert any("refused but applied: start v" in p for p in report.problems)
