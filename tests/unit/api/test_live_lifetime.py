"""How long a monitor connection may stay open: the configured lifetime with jitter, capped
by the expiry of the credential it opened with."""

from __future__ import annotations

import pytest

from ccat_api.api.live import LIFETIME_JITTER, connection_lifetime_s

NOW = 1_000_000.0


@pytest.mark.parametrize(("spread", "expected_s"), [(-1.0, 3240.0), (0.0, 3600.0), (1.0, 3960.0)])
def test_the_lifetime_moves_by_at_most_the_jitter(spread: float, expected_s: float) -> None:
    assert LIFETIME_JITTER == 0.1
    got = connection_lifetime_s(3600.0, None, now=NOW, spread=spread)
    assert got == pytest.approx(expected_s)


def test_a_spread_out_of_range_is_clamped_to_the_jitter() -> None:
    assert connection_lifetime_s(100.0, None, now=NOW, spread=7.0) == pytest.approx(110.0)
    assert connection_lifetime_s(100.0, None, now=NOW, spread=-7.0) == pytest.approx(90.0)


def test_the_lifetime_ends_when_the_credential_does() -> None:
    # Opened 600 s into a 900 s access token: 300 s left, whatever the configured maximum.
    assert connection_lifetime_s(3600.0, NOW + 300.0, now=NOW, spread=1.0) == 300.0


def test_the_credential_expiry_is_not_jittered_past() -> None:
    # Jitter may shorten a connection below a far expiry, never lengthen it past a near one.
    assert connection_lifetime_s(100.0, NOW + 100.0, now=NOW, spread=1.0) == 100.0
    assert connection_lifetime_s(100.0, NOW + 100.0, now=NOW, spread=-1.0) == pytest.approx(90.0)


def test_an_expired_credential_leaves_no_lifetime() -> None:
    assert connection_lifetime_s(3600.0, NOW - 1.0, now=NOW, spread=0.0) <= 0
