"""Storing received transactions on PostgreSQL: COPY against one INSERT per row.

    python -m bench.sync_store [--transactions 50000] [--rounds 3]

Stores the same rows into ``sync_incoming_transactions`` of a throwaway
PostgreSQL cluster, in bundles of 1000 (as a file import does), once with
``sync.storing.insert_rows`` (COPY) and once with the executemany INSERT it
replaced, alternating, each round on an emptied table; prints rows per second
of each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from sqlalchemy import delete, insert

from bench.api.servers import database_urls
from bench.common import bounded_int
from bench.sync.server import close_app, register_producers, server_app
from sync.models import IncomingTransaction, SyncProducer
from sync.storing import insert_rows
from sync.wire.signing import new_credential, public_key_of
from tracker.db_types import utcnow
from tracker.extensions import db

BUNDLE = 1000


def rows_for(producer_id: int, count: int) -> list[dict]:
    now = utcnow()
    return [
        {
            "producer_id": producer_id,
            "sequence": n,
            "model": "Household",
            "natural_key": f'["H{n}"]',
            "action": "insert",
            "schema_version": 1,
            "payload": json.dumps({"fields": {"code": f"H{n}"}, "parents": {}}),
            "body": None,
            "hash": f"{n:064x}",
            "created": now,
            "received": now,
            "status": "received",
            "reason": "",
            "operation_id": None,
        }
        for n in range(1, count + 1)
    ]


def executemany(session, table, rows) -> None:
    session.execute(insert(table), rows)


def timed(store, rows) -> float:
    table = IncomingTransaction.__table__
    db.session.execute(delete(table))
    db.session.commit()
    started = time.perf_counter()
    for start in range(0, len(rows), BUNDLE):
        store(db.session, table, rows[start : start + BUNDLE])
        db.session.commit()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sync_store")
    parser.add_argument("--transactions", type=bounded_int(1000, 10**7), default=50000)
    parser.add_argument("--rounds", type=bounded_int(1, 20), default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        with database_urls("postgresql", workdir) as make_url:
            app = server_app(make_url("store"), workdir / "instance")
            register_producers(app, {"p1": public_key_of(new_credential())})
            with app.app_context():
                producer_id = db.session.scalar(db.select(SyncProducer.id))
                rows = rows_for(producer_id, args.transactions)
                seconds = {"COPY": [], "executemany INSERT": []}
                for _ in range(args.rounds):
                    seconds["executemany INSERT"].append(timed(executemany, rows))
                    seconds["COPY"].append(timed(insert_rows, rows))
            close_app(app)
    best = {name: min(values) for name, values in seconds.items()}
    print(f"{args.transactions:,} rows in bundles of {BUNDLE}, best of {args.rounds}:")
    for name, value in best.items():
        print(f"  {name:<18} {value:7.2f} s  {args.transactions / value:>9,.0f} rows/s")
    ratio = best["executemany INSERT"] / best["COPY"]
    print(f"  COPY is {ratio:.1f}x the baseline (executemany INSERT, same run)")


if __name__ == "__main__":
    main()
