"""On SQLite, a process's writing transactions take turns in a lock that every
way a transaction ends lets go of: commit, rollback, a connection closed; the
processes using one database file take turns in a lock on a file beside it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import insert, text

from tests.conftest import build_app
from tracker.extensions import db
from tracker.instances.models import Instance
from tracker.sqlite_writers import EXTENSION, ProcessTurns

REPO_ROOT = Path(__file__).resolve().parents[1]

ROW = {"url": "http://a.org", "contact": "C", "email": "c@a.org", "organisation": "O"}


def test_every_end_of_a_write_lets_the_next_writer_in(tmp_path):
    app = build_app(f"sqlite:///{tmp_path / 'w.sqlite'}", tmp_path / "instance")
    with app.app_context():
        db.create_all()
        writer = app.extensions[EXTENSION]
        db.session.execute(text("SELECT 1"))
        assert not writer.lock.locked()  # reading takes no turn
        db.session.execute(insert(Instance), ROW)
        assert writer.lock.locked()
        db.session.commit()
        assert not writer.lock.locked()
        db.session.execute(insert(Instance), ROW)
        db.session.rollback()
        assert not writer.lock.locked()
        with db.engine.connect() as connection:
            connection.execute(insert(Instance), ROW)
            assert writer.lock.locked()
        # Closed without a commit: the pool's reset let go.
        assert not writer.lock.locked()

        # Another thread's write waits its turn, then goes ahead.
        db.session.execute(insert(Instance), ROW)
        done = threading.Event()

        def other_writer() -> None:
            with app.app_context():
                db.session.execute(insert(Instance), ROW)
                db.session.commit()
                done.set()

        thread = threading.Thread(target=other_writer)
        thread.start()
        assert not done.is_set()
        db.session.commit()
        thread.join()
        assert done.is_set()
        assert db.session.scalar(text("SELECT count(*) FROM instances")) == 3
        db.engine.dispose()


HOLDER = """
import sys
from sqlalchemy import insert
from tests.conftest import build_app
from tracker.extensions import db
from tracker.instances.models import Instance

app = build_app(sys.argv[1], sys.argv[2])
with app.app_context():
    db.session.execute(insert(Instance), {row!r})
    print("holding", flush=True)
    sys.stdin.readline()
    db.session.commit()
    print("committed", flush=True)
"""


def test_a_write_in_another_process_holds_the_turn_until_it_ends(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    app = build_app(url, tmp_path / "instance")
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    turns = app.extensions[EXTENSION].turns
    assert turns.path == tmp_path / "w.sqlite-writers"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(row=ROW), url, str(tmp_path / "i2")],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "holding\n"
        # Its uncommitted insert holds the turn: this process cannot take it.
        assert not turns.acquire(timeout=0.05)
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline() == "committed\n"
        assert holder.wait(timeout=30) == 0
        assert turns.acquire(timeout=5)
        turns.release()
    finally:
        holder.kill()
        holder.communicate()
    with app.app_context():
        db.session.execute(insert(Instance), ROW)
        db.session.commit()
        assert db.session.scalar(text("SELECT count(*) FROM instances")) == 2
        db.engine.dispose()


def test_a_forked_process_takes_turns_with_its_parent(tmp_path):
    turns = ProcessTurns(tmp_path / "db-writers")
    assert turns.acquire(timeout=1)
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports by its exit code)
        os._exit(0 if not turns.acquire(timeout=0.05) else 1)
    _pid, status = os.waitpid(child, 0)
    turns.release()
    assert os.waitstatus_to_exitcode(status) == 0
    assert turns.acquire(timeout=1)
    turns.release()


def test_a_database_folder_it_cannot_write_leaves_the_waiting_to_sqlite(tmp_path):
    turns = ProcessTurns(tmp_path / "missing-folder" / "db-writers")
    assert not turns.acquire(timeout=1)
    turns.release()  # nothing held: nothing to let go
