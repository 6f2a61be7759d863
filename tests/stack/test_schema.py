"""Migrations from empty, and the SQLAlchemy definitions agree with sql/ (one source of truth)."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql

from streamscore.db.connection import admin_url, make_engine
from streamscore.db.migrate import migrate
from streamscore.db.tables import VIEWS, Base
from streamscore.settings import Settings
from tests.stack.conftest import Schema


def test_migrations_apply_from_empty_and_then_do_nothing(stack: Settings, pg_schema: Schema) -> None:
    inspector = inspect(make_engine(pg_schema.admin))
    tables = set(inspector.get_table_names(schema=pg_schema.name))
    assert set(Base.metadata.tables) <= tables
    assert set(VIEWS) == set(inspector.get_view_names(schema=pg_schema.name))
    assert migrate(admin_url(stack), schema=pg_schema.name) == []


def _type_name(column_type) -> str:
    """Compare types by their PostgreSQL spelling (``TEXT``, ``REAL[]``, ``TIMESTAMP WITH TIME ZONE`` …)."""
    return column_type.compile(dialect=postgresql.dialect()).upper().replace("DOUBLE PRECISION", "FLOAT")


def test_sqlalchemy_tables_match_the_migrated_schema(pg_schema: Schema) -> None:
    inspector = inspect(make_engine(pg_schema.admin))
    for name, table in Base.metadata.tables.items():
        reflected = {c["name"]: c for c in inspector.get_columns(name, schema=pg_schema.name)}
        declared = {c.name: c for c in table.columns}
        assert set(reflected) == set(declared), f"{name}: columns differ"
        for column_name, column in declared.items():
            db = reflected[column_name]
            assert _type_name(column.type) == _type_name(db["type"]), (
                f"{name}.{column_name}: {column.type} vs {db['type']}"
            )
            assert column.nullable == db["nullable"], f"{name}.{column_name}: nullability differs"
            assert (column.server_default is not None) == (db["default"] is not None), (
                f"{name}.{column_name}: default differs"
            )
        primary = inspector.get_pk_constraint(name, schema=pg_schema.name)["constrained_columns"]
        assert primary == [c.name for c in table.primary_key.columns], f"{name}: primary key differs"
