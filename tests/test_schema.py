"""The schema migrations build is the schema ``db create`` builds: columns,
types, nullability, server defaults, keys and indexes, on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect

from tests.test_cli import manage_command


def schema_of(database_url: str) -> dict:
    """Every table's columns and constraints, as the database reports them."""
    engine = create_engine(database_url)
    try:
        inspector = inspect(engine)
        schema = {}
        for table in sorted(inspector.get_table_names()):
            columns = {
                column["name"]: (
                    str(column["type"]),
                    column["nullable"],
                    column.get("default"),
                )
                for column in inspector.get_columns(table)
            }
            schema[table] = {
                "columns": columns,
                "primary key": tuple(
                    inspector.get_pk_constraint(table)["constrained_columns"]
                ),
                "foreign keys": sorted(
                    (
                        fk["name"],
                        tuple(fk["constrained_columns"]),
                        fk["referred_table"],
                        tuple(fk["referred_columns"]),
                        (fk.get("options") or {}).get("ondelete"),
                    )
                    for fk in inspector.get_foreign_keys(table)
                ),
                "unique": sorted(
                    (u["name"], tuple(u["column_names"]))
                    for u in inspector.get_unique_constraints(table)
                ),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                    for i in inspector.get_indexes(table)
                ),
                "checks": sorted(
                    (c["name"], c["sqltext"])
                    for c in inspector.get_check_constraints(table)
                ),
            }
        return schema
    finally:
        engine.dispose()


def flattened(schema: dict) -> dict:
    """(table, part[, column]) -> what the database says: a difference names
    the very column."""
    flat = {}
    for table, parts in schema.items():
        for part, value in parts.items():
            if part == "columns":
                flat.update({(table, column): v for column, v in value.items()})
            else:
                flat[(table, part)] = value
    return flat


@pytest.fixture
def two_postgres_databases(postgres, tmp_path):
    names = [postgres.create_database(), postgres.create_database()]
    yield [postgres.url(name) for name in names]
    for name in names:
        postgres.drop_database(name)


def test_migrated_postgresql_schema_equals_the_created_one(
    two_postgres_databases, tmp_path
):
    migrated_url, created_url = two_postgres_databases
    for name in ("migrated", "created"):
        (tmp_path / name).mkdir()
    migrated = manage_command(migrated_url, tmp_path / "migrated")("db", "upgrade")
    assert migrated.returncode == 0, migrated.stderr
    created = manage_command(created_url, tmp_path / "created")("db", "create")
    assert created.returncode == 0, created.stderr
    migrated_schema = flattened(schema_of(migrated_url))
    created_schema = flattened(schema_of(created_url))
    differences = {
        key: (migrated_schema.get(key), created_schema.get(key))
        for key in migrated_schema.keys() | created_schema.keys()
        if migrated_schema.get(key) != created_schema.get(key)
    }
    assert differences == {}


def test_migrating_down_and_up_keeps_the_rows_that_refer_to_a_rebuilt_table(
    empty_database_url, tmp_path
):
    """SQLite rebuilds a table to alter it: the rows referring to it (a user's
    tokens and sessions, a job's starter) must survive, both ways."""
    manage = manage_command(empty_database_url, tmp_path)
    assert manage("db", "upgrade").returncode == 0
    assert manage("create_usr", "ada", "a long password").returncode == 0
    assert manage("create-token", "ada", "--name", "prometheus").returncode == 0
    before_roles = "5b7e0c9d2a41"
    for step in (("db", "downgrade", before_roles, "--yes"), ("db", "upgrade")):
        result = manage(*step)
        assert result.returncode == 0, result.stderr
        engine = create_engine(empty_database_url)
        try:
            with engine.connect() as connection:
                names = connection.exec_driver_sql("SELECT name FROM api_tokens")
                assert names.scalars().all() == ["prometheus"], step
        finally:
            engine.dispose()


def test_an_instances_pause_comes_to_name_it_by_number(empty_database_url, tmp_path):
    """Pauses named an instance by its uuid; upgraded, by its number."""
    manage = manage_command(empty_database_url, tmp_path)
    assert manage("db", "upgrade", "d774a3441067").returncode == 0
    engine = create_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO instances (id, uuid, url, contact, email, organisation, "
                "enabled, client_enabled, admin_disabled, approved, location_manual, "
                "registered, updated, health, last_error, crawled, crawled_sources) "
                "VALUES (7, 'a5f0c5d2-7f0e-4a57-9d0e-3b2f1c4d5e6f', "
                "'https://a.example.org', 'C', 'c@example.org', 'O', true, true, "
                "false, true, false, '2026-01-01 00:00:00', '2026-01-01 00:00:00', "
                "'unknown', "
                "'', '{}', '{}')"
            )
            for value in ("a5f0c5d2-7f0e-4a57-9d0e-3b2f1c4d5e6f", "gone-uuid"):
                connection.exec_driver_sql(
                    "INSERT INTO pauses (kind, value, until, note, created) VALUES "
                    f"('instance', '{value}', '2099-01-01 00:00:00', '', "
                    "'2026-01-01 00:00:00')"
                )
        result = manage("db", "upgrade")
        assert result.returncode == 0, result.stderr
        with engine.connect() as connection:
            pauses = connection.exec_driver_sql("SELECT kind, value FROM pauses")
            assert pauses.all() == [("instance", "7")]
    finally:
        engine.dispose()
