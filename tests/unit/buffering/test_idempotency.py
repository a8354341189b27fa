"""A retried Idempotency-Key: the first answer, a refusal for another request, and a refusal
once only a tombstone of the answer is left (main, after idempotency_ttl_s)."""

from __future__ import annotations

import pytest

from ccat_api.buffering.idempotency import Answer, claim, replay
from ccat_api.errors import IdempotencyKeyExpired, IdempotencyKeyReused

BODY = b'{"obs_unit_id": 1}'


def first_use() -> dict[str, object]:
    used = claim("token:1", "k-1", method="POST", path="/executed_obs_units/start", body=BODY)
    return {"hash": used.request_hash, "status": 201, "body": {"id": "x"}}


def test_the_same_request_gets_the_first_answer() -> None:
    again = claim("token:1", "k-1", method="POST", path="/executed_obs_units/start", body=BODY)
    assert replay(again, first_use()) == Answer(201, {"id": "x"})


def test_a_tombstoned_key_is_refused_with_409_naming_the_key() -> None:
    again = claim("token:1", "k-1", method="POST", path="/executed_obs_units/start", body=BODY)
    with pytest.raises(IdempotencyKeyExpired) as refused:
        replay(again, {**first_use(), "body": None})
    assert refused.value.status_code == 409
    assert refused.value.field == "Idempotency-Key"
    assert "'k-1'" in refused.value.message


def test_another_request_under_a_tombstoned_key_is_still_a_reused_key() -> None:
    other = claim("token:1", "k-1", method="POST", path="/executed_obs_units/start", body=b"{}")
    with pytest.raises(IdempotencyKeyReused):
        replay(other, {**first_use(), "body": None})
