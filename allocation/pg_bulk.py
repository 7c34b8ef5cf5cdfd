"""An import's bulk writes on PostgreSQL: COPY into a temporary table, then one
INSERT ... SELECT.

Through SQLAlchemy's executemany, psycopg rewrote and PostgreSQL parsed every
batch of a million runs as a new statement; COPY streams the rows, and the
database checks them against the unique keys in one statement. The inserted
runs come back from RETURNING, so no run is looked up first and none is
charged twice, whoever else imports meanwhile. Used when the connection is
psycopg's (the driver the settings name); the caller falls back otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

# The runs of one chunk: (machine id, job id, project id, account, user,
# partition, start and end as Unix seconds, elapsed seconds, CPUs, CPU hours).
_JOB_COLUMNS = (
    "machine_id",
    "job_id",
    "project_id",
    "account",
    "username",
    "partition",
    "started_s",
    "ended_s",
    "elapsed_seconds",
    "cpus",
    "cpu_hours",
)
_CREATE_JOBS = """
CREATE TEMPORARY TABLE IF NOT EXISTS allocation_import_jobs (
    machine_id integer, job_id text, project_id integer,
    account text, username text, partition text,
    started_s bigint, ended_s bigint, elapsed_seconds bigint, cpus bigint,
    cpu_hours double precision
) ON COMMIT DELETE ROWS
"""
_INSERT_JOBS = """
INSERT INTO allocation_jobs (machine_id, job_id, project_id, account, username,
    partition, started, ended, elapsed_seconds, cpus, cpu_hours)
SELECT machine_id, job_id, project_id, account, username, partition,
    to_timestamp(started_s), to_timestamp(ended_s), elapsed_seconds, cpus, cpu_hours
FROM allocation_import_jobs
ON CONFLICT (machine_id, job_id, started) DO NOTHING
RETURNING machine_id, job_id, floor(extract(epoch FROM started))::bigint
"""
_USAGE_COLUMNS = ("resource_id", "project_id", "day", "quantity", "raw_quantity", "n")
_CREATE_USAGE = """
CREATE TEMPORARY TABLE IF NOT EXISTS allocation_import_usages (
    resource_id integer, project_id integer, day date,
    quantity double precision, raw_quantity double precision, n integer
) ON COMMIT DELETE ROWS
"""
_ADD_USAGE = """
INSERT INTO allocation_usages AS usage (resource_id, project_id, day, quantity,
    raw_quantity, count)
SELECT resource_id, project_id, day, quantity, raw_quantity, n
FROM allocation_import_usages
ON CONFLICT (resource_id, project_id, day) DO UPDATE SET
    quantity = usage.quantity + excluded.quantity,
    raw_quantity = usage.raw_quantity + excluded.raw_quantity,
    count = usage.count + excluded.count
"""


def _psycopg_connection(session: Session):
    """The session's psycopg (3) connection, or None for another driver."""
    connection = session.connection().connection.driver_connection
    module = type(connection).__module__
    return connection if module.partition(".")[0] == "psycopg" else None


def usable(session: Session) -> bool:
    """Whether this session's writes can go through COPY."""
    return (
        session.get_bind().dialect.name == "postgresql"
        and _psycopg_connection(session) is not None
    )


def _copy(cursor, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    cursor.execute(f"TRUNCATE {table}")
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def insert_runs(session: Session, rows: Sequence[tuple]) -> set[tuple[int, str, int]]:
    """Insert the runs not yet stored; return (machine id, job id, start Unix
    seconds) of those inserted now."""
    with _psycopg_connection(session).cursor() as cursor:
        cursor.execute(_CREATE_JOBS)
        _copy(cursor, "allocation_import_jobs", _JOB_COLUMNS, rows)
        cursor.execute(_INSERT_JOBS)
        return {tuple(row) for row in cursor.fetchall()}


def add_usage(session: Session, rows: Sequence[tuple]) -> None:
    """Add (resource id, project id, day, quantity, raw quantity, count) to the
    daily usage rows, creating those that are missing."""
    with _psycopg_connection(session).cursor() as cursor:
        cursor.execute(_CREATE_USAGE)
        _copy(cursor, "allocation_import_usages", _USAGE_COLUMNS, rows)
        cursor.execute(_ADD_USAGE)
