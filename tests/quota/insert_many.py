"""Insert visits until refused, from a separate process: prints how many went in.

python -m tests.quota.insert_many DATABASE_URL ATTEMPTS
"""

import sys

from quota.client import QuotaReachedError
from tests.quota.field_app import Visit, create_field_app, field_db

if __name__ == "__main__":
    app = create_field_app(sys.argv[1], "proc", "s")
    created = 0
    with app.app_context():
        for _ in range(int(sys.argv[2])):
            field_db.session.add(Visit())
            try:
                field_db.session.commit()
                created += 1
            except QuotaReachedError:
                field_db.session.rollback()
        field_db.engine.dispose()
    print(created)
