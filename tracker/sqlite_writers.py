"""One writer at a time per process on SQLite, waiting in a lock, not in
SQLite's busy handler.

SQLite lets one connection write at a time; the others retry in its busy
handler, which sleeps between tries (up to 100 ms each), so under many
threads a write may wait seconds while the database is free. Here the threads
of one process take turns in a lock, woken the moment a transaction ends;
only the few processes contend in SQLite itself. Correctness stays with
SQLite: the lock only orders who asks first.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

HOLDS = "tracker.sqlite_writers.holds"
EXTENSION = "tracker.sqlite_writers"
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
# Past this the lock is passed over: SQLite's own busy timeout then applies.
WAIT_SECONDS = 30.0


class OneWriter:
    """The lock of one engine's writing transactions in this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owner: int | None = None

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

    def release(self, info: dict) -> None:
        if info.pop(HOLDS, False):
            self.owner = None
            self.lock.release()

    def on_end(self, conn) -> None:
        self.release(conn.info)

    def on_reset(self, dbapi_connection, connection_record, reset_state) -> None:
        self.on_checkin(dbapi_connection, connection_record)

    def on_checkin(self, dbapi_connection, connection_record) -> None:
        if connection_record is not None:
            self.release(connection_record.info)

    def on_invalidate(self, dbapi_connection, connection_record, exception) -> None:
        self.on_checkin(dbapi_connection, connection_record)


def install(engine: Engine) -> OneWriter:
    """Order this process's writing transactions on ``engine``."""
    writer = OneWriter()
    event.listen(engine, "before_cursor_execute", writer.before_execute)
    event.listen(engine, "commit", writer.on_end)
    event.listen(engine, "rollback", writer.on_end)
    # A connection given back without either (closed, invalidated) lets go too.
    event.listen(engine.pool, "reset", writer.on_reset)
    event.listen(engine.pool, "checkin", writer.on_checkin)
    event.listen(engine.pool, "close", writer.on_checkin)
    event.listen(engine.pool, "invalidate", writer.on_invalidate)
    return writer
