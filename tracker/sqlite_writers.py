"""One writer at a time on SQLite, waiting in a lock, not in SQLite's busy
handler.

SQLite lets one connection write at a time; the others retry in its busy
handler, which sleeps between tries (up to 100 ms each), so under many
threads a write may wait seconds while the database is free. Here the threads
of one process take turns in a lock, woken the moment a transaction ends, and
the processes using one database file (web workers, Celery workers, commands)
take turns in a lock on a file beside it, which a waiter checks every few
milliseconds. Correctness stays with SQLite: the locks only order who asks
first; past ``WAIT_SECONDS`` they are passed over and SQLite's own busy
timeout applies.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

HOLDS = "tracker.sqlite_writers.holds"
EXTENSION = "tracker.sqlite_writers"
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
# Past this the lock is passed over: SQLite's own busy timeout then applies.
WAIT_SECONDS = 30.0
LOCK_FILE_SUFFIX = "-writers"
# A process waiting for another's write looks again after this, doubling up to
# the longest pause.
FIRST_PAUSE, LONGEST_PAUSE = 0.0002, 0.002


class ProcessTurns:
    """Turns between the processes writing one database file: an exclusive
    ``flock`` on a file beside it, opened anew in each process (a forked child
    must not share its parent's open file, which would share the lock too)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pid: int | None = None
        self.fd: int | None = None

    def _descriptor(self) -> int | None:
        if self.pid != os.getpid():
            self.pid = os.getpid()
            try:
                self.fd = os.open(
                    self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
                )
            except OSError:
                self.fd = None  # a folder it cannot write: SQLite's own waiting
        return self.fd

    def acquire(self, timeout: float) -> bool:
        fd = self._descriptor()
        if fd is None:
            return False
        deadline = time.monotonic() + timeout
        pause = FIRST_PAUSE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE)

    def release(self) -> None:
        if self.pid == os.getpid() and self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)


class OneWriter:
    """The lock of one engine's writing transactions in this process, and,
    for a database file, the turns between processes."""

    def __init__(self, turns: ProcessTurns | None = None) -> None:
        self.lock = threading.Lock()
        self.owner: int | None = None
        self.turns = turns
        self.holds_turn = False

    def before_execute(self, conn, _cursor, statement: str, *_args: Any) -> None:
        info = conn.info
        if info.get(HOLDS) or not statement.lstrip()[:7].upper().startswith(WRITES):
            return
        me = threading.get_ident()
        if self.owner == me:
            return  # this thread already writes through another connection
        if self.lock.acquire(timeout=WAIT_SECONDS):
            self.owner = me
            info[HOLDS] = True
            if self.turns is not None:
                self.holds_turn = self.turns.acquire(WAIT_SECONDS)

    def release(self, info: dict) -> None:
        if info.pop(HOLDS, False):
            if self.holds_turn:
                self.holds_turn = False
                self.turns.release()
            self.owner = None
            self.lock.release()

    def on_end(self, conn) -> None:
        try:
            info = conn.info
        except exc.SQLAlchemyError:
            # Invalidated mid-statement (an interrupt): the pool's invalidate
            # event let go already.
            return
        self.release(info)

    def on_reset(self, dbapi_connection, connection_record, reset_state) -> None:
        self.on_checkin(dbapi_connection, connection_record)

    def on_checkin(self, dbapi_connection, connection_record) -> None:
        if connection_record is not None:
            self.release(connection_record.info)

    def on_invalidate(self, dbapi_connection, connection_record, exception) -> None:
        self.on_checkin(dbapi_connection, connection_record)


def install(engine: Engine, database_file: Path | None = None) -> OneWriter:
    """Order the writing transactions on ``engine``: this process's, and, for
    a ``database_file``, those of every process using it."""
    turns = None
    if database_file is not None:
        turns = ProcessTurns(
            database_file.with_name(database_file.name + LOCK_FILE_SUFFIX)
        )
    writer = OneWriter(turns)
    event.listen(engine, "before_cursor_execute", writer.before_execute)
    event.listen(engine, "commit", writer.on_end)
    event.listen(engine, "rollback", writer.on_end)
    # A connection given back without either (closed, invalidated) lets go too.
    event.listen(engine.pool, "reset", writer.on_reset)
    event.listen(engine.pool, "checkin", writer.on_checkin)
    event.listen(engine.pool, "close", writer.on_checkin)
    event.listen(engine.pool, "invalidate", writer.on_invalidate)
    return writer
