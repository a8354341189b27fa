"""The spool file on its own: fsynced WAL, writes in the order they came, bounds, refusals
kept for the operator, and one sender at a time across processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccat_api.client import ApiError, SpoolError, SpoolFull, WriteResult
from ccat_api.client.call import Call, write_call
from ccat_api.client.sendlock import LockState, SendLock
from ccat_api.client.spool import Spool
from ccat_api.client.spool_records import Destination

HERE = Destination.of("http://gateway.test", "ccat_0a1b2c3d_secret")


def _write(n: int, size: int = 10) -> Call[WriteResult]:
    return write_call("POST", "/api/transfer/transfers/x/logs", {"message": "m" * size, "n": n})


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    opened = Spool(tmp_path / "spool.db", max_entries=5, max_bytes=10_000)
    yield opened
    opened.close()


def test_the_file_is_sqlite_in_wal_mode_and_every_commit_is_fsynced(spool: Spool) -> None:
    spool.append(write_call("POST", "/raw_data_files", {"name": "f"}), HERE)
    reader = sqlite3.connect(spool.path)
    try:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        reader.close()
    # synchronous is a property of the connection that commits: FULL is 2.
    assert spool._db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_writes_leave_in_the_order_they_came(spool: Spool) -> None:
    calls = [write_call("POST", "/raw_data_files", {"name": f"f{i}"}) for i in range(3)]
    seqs = [spool.append(call, HERE) for call in calls]
    assert seqs == sorted(seqs)
    for call in calls:
        head = spool.first()
        assert head is not None
        assert (head.idempotency_key, head.call().json) == (call.idempotency_key, call.json)
        spool.delivered(head.seq)
    assert spool.first() is None
    # A new write never takes a number a delivered one had.
    assert spool.append(calls[0], HERE) > seqs[-1]


def test_a_write_past_the_bounds_is_refused_and_nothing_is_stored(spool: Spool) -> None:
    for n in range(5):
        spool.append(_write(n), HERE)
    head = spool.first()
    assert head is not None
    spool.failed(head.seq, "no answer after 5 attempt(s): refused", attempts=5)
    with pytest.raises(SpoolFull, match=r"full: 5 writes.*bounds 5 writes") as raised:
        spool.append(_write(5), HERE)
    assert "neither stored nor sent" in str(raised.value)
    assert "no answer after 5 attempt(s): refused" in str(raised.value)
    assert spool.count() == 5


def test_a_write_larger_than_the_byte_bound_is_refused(spool: Spool) -> None:
    with pytest.raises(SpoolFull, match="this write 10"):
        spool.append(_write(0, size=10_000), HERE)
    assert spool.count() == 0


def test_the_bounds_a_client_set_stay_when_the_command_line_opens_it(spool: Spool) -> None:
    again = Spool(spool.path)
    try:
        assert (again.max_entries, again.max_bytes) == (5, 10_000)
        assert again.status().max_entries == 5
    finally:
        again.close()


def test_the_same_key_again_is_the_same_write(spool: Spool) -> None:
    call = write_call("POST", "/raw_data_files", {"name": "f"})
    assert spool.append(call, HERE) == spool.append(call, HERE)
    assert spool.count() == 1
    other = write_call("POST", "/raw_data_files", {"name": "g"}, call.idempotency_key)
    with pytest.raises(SpoolError, match="spooled for another request"):
        spool.append(other, HERE)


def test_a_refused_write_is_set_aside_for_the_operator_and_the_newest_are_kept(
    spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ccat_api.client.spool.REJECTIONS_KEPT", 2)
    for n in range(3):
        spool.append(_write(n), HERE)
        head = spool.first()
        assert head is not None
        refusal = ApiError(method="POST", path=head.path, status_code=422, detail=f"bad {n}")
        spool.reject(head, refusal)
    status = spool.status()
    assert (status.entries, status.rejected) == (0, 2)
    assert status.last_rejection is not None
    assert (status.last_rejection.status_code, status.last_rejection.error) == (
        422,
        "POST /api/transfer/transfers/x/logs -> 422 error: bad 2",
    )


def test_status_says_what_waits_and_for_whom(spool: Spool) -> None:
    spool.append(_write(0), HERE)
    spool.append(_write(1), Destination.of("http://other.test", "session-token"))
    status = spool.status()
    assert status.entries == 2
    assert status.size_bytes > 0
    assert status.file_bytes > status.size_bytes
    assert status.oldest_age_s is not None
    assert status.oldest_age_s >= 0
    session = Destination.of("http://other.test", "session-token")
    assert [(d.gateway, d.token_name, n) for d, n in status.destinations] == [
        ("http://gateway.test", "token 0a1b2c3d", 1),
        ("http://other.test", f"token sha256:{session.credential[:12]}", 1),
    ]
    assert status.sender_pid is None


def test_the_token_is_never_stored(spool: Spool) -> None:
    spool.append(_write(0), HERE)
    spool.close()
    for name in os.listdir(spool.path.parent):
        assert b"secret" not in (spool.path.parent / name).read_bytes()


def test_a_spool_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(SpoolError, match="format 99"):
        Spool(path)
    with pytest.raises(SpoolError, match="no spool at"):
        Spool(tmp_path / "missing.db", create=False)


def test_one_sender_at_a_time_and_a_dead_one_blocks_nobody(tmp_path: Path) -> None:
    path = tmp_path / "spool.db.lock"
    here, other = SendLock(path), SendLock(path)
    try:
        assert here.try_acquire() is LockState.HELD
        assert here.try_acquire() is LockState.BUSY_HERE
        assert other.try_acquire() is LockState.BUSY_ELSEWHERE
        assert other.holder() == os.getpid()
        here.release()
        assert here.holder() is None

        # Another process takes the lock and is killed holding it.
        with subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(f"""
                import sys, time
                from pathlib import Path
                from ccat_api.client.sendlock import SendLock
                assert SendLock(Path({str(path)!r})).try_acquire().name == "HELD"
                print("held", flush=True)
                time.sleep(60)
            """)],
            stdout=subprocess.PIPE,
        ) as holder:  # fmt: skip
            try:
                assert holder.stdout is not None
                assert holder.stdout.readline() == b"held\n"
                assert here.try_acquire() is LockState.BUSY_ELSEWHERE
                assert here.holder() == holder.pid
            finally:
                holder.send_signal(signal.SIGKILL)
                holder.wait(timeout=30)
        assert here.try_acquire() is LockState.HELD
        here.release()
    finally:
        here.close()
        other.close()
