"""Per-token write quotas counted in memory (a site without Redis): 429 with Retry-After past
the limit, per token, and a setting that does not parse is refused at start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.quotas import WriteQuota
from ccat_api.config import Settings
from ccat_api.errors import RateLimited


def _quota(limit: str) -> WriteQuota:
    return WriteQuota(limit, redis=None, keys=SiteKeys("test"), redis_required=False)


async def test_a_token_over_its_quota_gets_429_with_retry_after() -> None:
    quota = _quota("3/minute")
    for _ in range(3):
        await quota.spend("token-1")
    with pytest.raises(RateLimited) as refused:
        await quota.spend("token-1")
    assert refused.value.status_code == 429
    assert refused.value.to_dict()["code"] == "rate_limited"
    assert refused.value.retry_after_s is not None
    assert 1 <= refused.value.retry_after_s <= 60


async def test_each_token_has_its_own_quota() -> None:
    quota = _quota("1/minute")
    await quota.spend("token-1")
    await quota.spend("token-2")
    with pytest.raises(RateLimited):
        await quota.spend("token-1")


def test_the_rate_limit_setting_is_checked_at_start() -> None:
    parsed = Settings(development=True, write_rate_limit=" 100 per second")
    assert parsed.write_rate_limit == "100 per second"
    assert Settings(development=True, write_rate_limit="").write_rate_limit == ""
    with pytest.raises(ValidationError, match="write_rate_limit"):
        Settings(development=True, write_rate_limit="fast")
