"""Key names are pinned: a site's Redis holds buffered writes under them across upgrades."""

from __future__ import annotations

from ccat_api.buffering.keys import SiteKeys

TX_ID = "0190c2a1-7b3e-7cc0-8d4e-5f6a7b8c9d0e"
PACKAGE = "raw_data_package_id=0190c2a1-0000-7000-8000-000000000001"


def test_fixed_key_names_are_unchanged() -> None:
    keys = SiteKeys("obs")
    assert [
        keys.stream,
        keys.seq,
        keys.applied,
        keys.dead,
        keys.recent,
        keys.lease,
        keys.lease_epoch,
        keys.processor,
        keys.stats,
        keys.events,
    ] == [
        "ccat:obs:stream",
        "ccat:obs:seq",
        "ccat:obs:applied",
        "ccat:obs:dead",
        "ccat:obs:recent",
        "ccat:obs:lease",
        "ccat:obs:lease:epoch",
        "ccat:obs:processor",
        "ccat:obs:stats",
        "ccat:obs:events",
    ]


def test_record_key_names_are_unchanged() -> None:
    keys = SiteKeys("obs")
    assert keys.tx(TX_ID) == "ccat:obs:tx:0190c2a1-7b3e-7cc0-8d4e-5f6a7b8c9d0e"
    assert keys.overlay("raw_data_files") == "ccat:obs:ov:raw_data_files"
    assert keys.overlay_index("raw_data_files", PACKAGE) == (
        "ccat:obs:ovi:raw_data_files:raw_data_package_id=0190c2a1-0000-7000-8000-000000000001"
    )
    assert keys.idempotency("token:7", "abc") == "ccat:obs:idem:token:7:abc"
    assert keys.ws_ticket("j1") == "ccat:obs:wsticket:j1"


def test_prefixes_given_to_the_scripts_are_unchanged() -> None:
    # The scripts append a tx id, or a model (then the separator and an entry), to these.
    keys = SiteKeys("obs")
    assert keys.tx_prefix == "ccat:obs:tx:"
    assert keys.overlay_families == (
        "ccat:obs:ov:",
        "ccat:obs:ovx:",
        "ccat:obs:ovi:",
        "ccat:obs:ovu:",
        ":",
    )


def test_visible_statuses_are_bucketed_by_the_second_of_their_uuid7() -> None:
    keys = SiteKeys("obs")
    # 0x0190c2a17b3e: 1,721,252,281,150 ms after the epoch, in second 1,721,252,281.
    assert keys.visible_bucket(TX_ID) == "ccat:obs:visible:1721252281"
    assert keys.visible_prefix == "ccat:obs:visible:"
    assert (keys.visible, keys.visible_count) == ("ccat:obs:visible", "ccat:obs:visible:count")
