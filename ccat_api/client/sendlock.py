"""One sender of a spool at a time, so its writes leave in order.

A thread lock for this process's threads, and ``flock`` on ``<spool>.lock`` for other
processes (and other clients of the same file in this one): the kernel drops it when its
holder dies, even by SIGKILL, so a dead sender never blocks the spool. The holder's pid is
written in the file for ``ccat-api spool status``.
"""

from __future__ import annotations

import os
import sys
import threading
from enum import Enum
from pathlib import Path

from ccat_api.client.errors import SpoolError

if sys.platform != "win32":
    import fcntl


class LockState(Enum):
    HELD = "held"
    BUSY_HERE = "another thread of this process is sending"
    BUSY_ELSEWHERE = "another process is sending"


class SendLock:
    """Held while a sender sends: ``try_acquire`` never blocks, a waiter polls."""

    def __init__(self, path: Path) -> None:
        if sys.platform == "win32":
            raise SpoolError("the spool needs POSIX file locks (Linux or macOS)")
        self.path = path
        self._threads = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def try_acquire(self) -> LockState:
        if not self._threads.acquire(blocking=False):
            return LockState.BUSY_HERE
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._threads.release()
            return LockState.BUSY_ELSEWHERE
        except BaseException:
            self._threads.release()
            raise
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)
        return LockState.HELD

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def holder(self) -> int | None:
        """The pid of whoever sends now, or None."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 32, 0).decode(errors="replace").strip()
                return int(text) if text.isdigit() else None
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
