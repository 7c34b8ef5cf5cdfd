"""On SQLite, a process's writing transactions take turns in a lock that every
way a transaction ends lets go of: commit, rollback, a connection closed."""

from __future__ import annotations

import threading

from sqlalchemy import insert, text

from tests.conftest import build_app
from tracker.extensions import db
from tracker.instances.models import Instance
from tracker.sqlite_writers import EXTENSION

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
