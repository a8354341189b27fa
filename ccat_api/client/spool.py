"""The SDK's spool: critical writes kept on the instrument's own disk until a gateway has
answered them, so losing the gateway host loses no write (``delivery.py`` sends them).

A SQLite file in WAL mode with ``synchronous=FULL``. A write is appended, fsynced, before its
first attempt, and deleted only once the gateway has answered it: a 2xx, or a refusal that
sending again cannot change, kept in ``rejected`` for the operator. It keeps the
Idempotency-Key it was first sent with, so the resend after a process died mid-send gets the
first answer and applies nothing twice. Writes leave in ``seq`` order; a ``SendLock`` lets
one sender at a time, across threads and processes, take them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ccat_api.client.call import Call
from ccat_api.client.errors import ApiError, SpoolError, SpoolFull
from ccat_api.client.sendlock import SendLock
from ccat_api.client.spool_records import Destination, Rejection, SpooledWrite, SpoolStatus

SCHEMA_VERSION = 1
# A day-long outage at a busy site buffers about 100,000 writes (docs/architecture.md); one
# instrument's share fits in this.
DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_MAX_BYTES = 256 * 2**20
# Refusals are kept for the operator to read, the newest this many.
REJECTIONS_KEPT = 1000
# How long a statement waits for another process's transaction (a sender deleting while the
# instrument appends) before giving up; each holds the file for milliseconds.
BUSY_TIMEOUT_S = 30.0

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS writes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        idempotency_key TEXT NOT NULL UNIQUE,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        body TEXT,
        size_bytes INTEGER NOT NULL,
        gateway TEXT NOT NULL,
        credential TEXT NOT NULL,
        token_name TEXT NOT NULL,
        spooled_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_attempt_at REAL,
        last_error TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS rejected (
        seq INTEGER PRIMARY KEY,
        idempotency_key TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        body TEXT,
        gateway TEXT NOT NULL,
        spooled_at REAL NOT NULL,
        rejected_at REAL NOT NULL,
        status_code INTEGER NOT NULL,
        error TEXT NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS limits (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    # What the spool holds, kept by triggers: counting the writes at each append took 19 ms
    # with 100,000 waiting (0.4 ms with this).
    """CREATE TABLE IF NOT EXISTS totals (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        entries INTEGER NOT NULL,
        size_bytes INTEGER NOT NULL
    )""",
    "INSERT OR IGNORE INTO totals VALUES (1, 0, 0)",
    """CREATE TRIGGER IF NOT EXISTS writes_in AFTER INSERT ON writes BEGIN
        UPDATE totals SET entries = entries + 1, size_bytes = size_bytes + NEW.size_bytes;
    END""",
    """CREATE TRIGGER IF NOT EXISTS writes_out AFTER DELETE ON writes BEGIN
        UPDATE totals SET entries = entries - 1, size_bytes = size_bytes - OLD.size_bytes;
    END""",
)
FIRST_WRITE = (
    "SELECT seq, idempotency_key, method, path, body, gateway, credential, token_name,"
    " spooled_at, attempts, last_error FROM writes ORDER BY seq LIMIT 1"
)


class Spool:
    """The spool file. Thread-safe: one connection, used under a lock, never across a send.

    ``max_entries``/``max_bytes`` given (a client) are this spool's bounds from now on; left
    out (``ccat-api spool``), the ones a client last set apply."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        create: bool = True,
    ) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise SpoolError(f"no spool at {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._guard = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise SpoolError(f"spool {self.path}: {exc}") from exc
        try:
            self._set_up(max_entries, max_bytes)
            self.lock = SendLock(self.path.with_name(self.path.name + ".lock"))
        except BaseException:
            self._db.close()
            raise

    def _set_up(self, max_entries: int | None, max_bytes: int | None) -> None:
        with self._guard, self._errors():
            if self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
                raise SpoolError(f"{self.path}: SQLite refused WAL mode")
            # FULL: in WAL mode, NORMAL would let a commit be lost to a power cut.
            self._db.execute("PRAGMA synchronous=FULL")
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise SpoolError(
                    f"{self.path} is a spool of format {version}, not {SCHEMA_VERSION}"
                )
            for statement in SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            given = {"max_entries": max_entries, "max_bytes": max_bytes}
            for name, value in given.items():
                if value is not None:
                    db.execute("INSERT OR REPLACE INTO limits VALUES (?, ?)", (name, value))
            stored = dict(db.execute("SELECT name, value FROM limits").fetchall())
        self.max_entries = int(stored.get("max_entries", DEFAULT_MAX_ENTRIES))
        self.max_bytes = int(stored.get("max_bytes", DEFAULT_MAX_BYTES))
        # The write-ahead log was just created; its name in the directory must survive a
        # power cut as surely as what is written in it.
        _sync_directory(self.path.parent)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; it commits, fsynced, when the block ends."""
        with self._guard, self._errors():
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full) leaves the transaction open: end it here.
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._guard, self._errors():
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise SpoolError(f"spool {self.path}: {exc}") from exc

    # --- what a sender does --------------------------------------------------------------------

    def append(self, call: Call[Any], destination: Destination) -> int:
        """Store ``call`` behind every write already here; its ``seq``. Raises ``SpoolFull``
        (nothing stored) at the bounds."""
        key = call.idempotency_key
        if key is None:
            raise ValueError("only a write with an Idempotency-Key can be spooled")
        body = None if call.json is None else json.dumps(call.json, separators=(",", ":"))
        size = 0 if body is None else len(body.encode())
        with self._transaction() as db:
            same = db.execute(
                "SELECT seq, method, path, body FROM writes WHERE idempotency_key = ?", (key,)
            ).fetchone()
            if same is not None:
                # The caller sent again a write that is still waiting here: it is that write.
                if tuple(same[1:]) != (call.method, call.path, body):
                    raise SpoolError(f"Idempotency-Key {key} is spooled for another request")
                return int(same[0])
            entries, size_bytes = db.execute("SELECT entries, size_bytes FROM totals").fetchone()
            if entries + 1 > self.max_entries or size_bytes + size > self.max_bytes:
                raise SpoolFull(self._full(db, entries, size_bytes, size))
            cursor = db.execute(
                "INSERT INTO writes (idempotency_key, method, path, body, size_bytes, gateway,"
                " credential, token_name, spooled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, call.method, call.path, body, size, destination.gateway,
                 destination.credential, destination.token_name, time.time()),
            )  # fmt: skip
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def _full(self, db: sqlite3.Connection, entries: int, size_bytes: int, size: int) -> str:
        oldest = db.execute(FIRST_WRITE).fetchone()
        waiting = ""
        if oldest is not None:
            head = _spooled(oldest)
            waiting = (
                f"; the oldest has waited {time.time() - head.spooled_at:.0f} s"
                f" ({head.last_error or 'not sent yet'})"
            )
        return (
            f"spool {self.path} is full: {entries} writes, {size_bytes} bytes (bounds"
            f" {self.max_entries} writes, {self.max_bytes} bytes; this write {size} bytes):"
            f" the write was neither stored nor sent{waiting}"
        )

    def first(self) -> SpooledWrite | None:
        """The next write to send."""
        with self._reading() as db:
            row = db.execute(FIRST_WRITE).fetchone()
        return None if row is None else _spooled(row)

    def holds(self, seq: int) -> bool:
        with self._reading() as db:
            return db.execute("SELECT 1 FROM writes WHERE seq = ?", (seq,)).fetchone() is not None

    def count(self) -> int:
        with self._reading() as db:
            return int(db.execute("SELECT entries FROM totals").fetchone()[0])

    def delivered(self, seq: int) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM writes WHERE seq = ?", (seq,))

    def failed(self, seq: int, reason: str, *, attempts: int) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE writes SET attempts = attempts + ?, last_attempt_at = ?, last_error = ?"
                " WHERE seq = ?",
                (attempts, time.time(), reason, seq),
            )

    def reject(self, write: SpooledWrite, error: ApiError) -> None:
        """The gateway refused ``write`` for good: out of the queue, into ``rejected``."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO rejected (seq, idempotency_key, method, path, body,"
                " gateway, spooled_at, rejected_at, status_code, error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (write.seq, write.idempotency_key, write.method, write.path, write.body,
                 write.destination.gateway, write.spooled_at, time.time(), error.status_code,
                 str(error)),
            )  # fmt: skip
            db.execute("DELETE FROM writes WHERE seq = ?", (write.seq,))
            db.execute(
                "DELETE FROM rejected WHERE seq NOT IN"
                " (SELECT seq FROM rejected ORDER BY seq DESC LIMIT ?)",
                (REJECTIONS_KEPT,),
            )

    def rejection(self, seq: int) -> Rejection | None:
        with self._reading() as db:
            row = db.execute(
                "SELECT seq, idempotency_key, method, path, rejected_at, status_code, error"
                " FROM rejected WHERE seq = ?",
                (seq,),
            ).fetchone()
        return None if row is None else Rejection(*row)

    # --- what an operator reads ----------------------------------------------------------------

    def status(self) -> SpoolStatus:
        with self._reading() as db:
            entries, size_bytes = db.execute("SELECT entries, size_bytes FROM totals").fetchone()
            head = db.execute(FIRST_WRITE).fetchone()
            destinations = db.execute(
                "SELECT gateway, credential, token_name, count(*) FROM writes"
                " GROUP BY gateway, credential, token_name ORDER BY min(seq)"
            ).fetchall()
            rejected = int(db.execute("SELECT count(*) FROM rejected").fetchone()[0])
            last = db.execute(
                "SELECT seq, idempotency_key, method, path, rejected_at, status_code, error"
                " FROM rejected ORDER BY rejected_at DESC, seq DESC LIMIT 1"
            ).fetchone()
        first = None if head is None else _spooled(head)
        files = (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
        return SpoolStatus(
            path=str(self.path),
            entries=int(entries),
            size_bytes=int(size_bytes),
            file_bytes=sum(f.stat().st_size for f in files if f.exists()),
            max_entries=self.max_entries,
            max_bytes=self.max_bytes,
            oldest_spooled_at=None if first is None else first.spooled_at,
            head=first,
            sender_pid=self.lock.holder(),
            destinations=[(Destination(g, c, n), int(k)) for g, c, n, k in destinations],
            rejected=rejected,
            last_rejection=None if last is None else Rejection(*last),
        )

    def close(self) -> None:
        with self._guard:
            self._db.close()
        self.lock.close()


def _spooled(row: tuple[Any, ...]) -> SpooledWrite:
    seq, key, method, path, body, gateway, credential, token_name, at, attempts, error = row
    return SpooledWrite(
        seq, key, method, path, body, Destination(gateway, credential, token_name), at,
        attempts, error,
    )  # fmt: skip


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
