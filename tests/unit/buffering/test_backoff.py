from __future__ import annotations

from ccat_api.waits import Backoff


def test_backoff_grows_then_stays_under_the_cap() -> None:
    backoff = Backoff(initial_s=0.1, max_s=2.0)
    delays = [backoff.next_delay_s() for _ in range(12)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(1.0 <= d <= 2.0 for d in delays[6:])
    backoff.reset()
    assert backoff.next_delay_s() <= 0.1
