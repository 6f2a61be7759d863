"""Real Kafka and PostgreSQL for the stack tests: started once per session (reused when already up), with
unique topic names and a freshly migrated schema per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from streamscore.db.connection import READER_ROLE, WRITER_ROLE, admin_url, make_engine, reader_url, with_schema, writer_url
from streamscore.db.migrate import migrate
from streamscore.settings import Settings
from streamscore.stack.manager import stack_up


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """Kafka and PostgreSQL answering on 127.0.0.1 (started by this fixture or already running)."""
    stack_up(settings, with_topics=False, with_migrations=False)
    return settings


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@dataclass(frozen=True)
class Schema:
    name: str
    admin: str
    writer: str
    reader: str


@pytest.fixture
def pg_schema(stack: Settings) -> Iterator[Schema]:
    """A new schema with every migration applied, and URLs of the three roles pointed at it."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = make_engine(admin_url(stack))
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    migrate(admin_url(stack), schema=name)
    yield Schema(name, with_schema(admin_url(stack), name), with_schema(writer_url(stack), name), with_schema(reader_url(stack), name))
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    engine.dispose()


__all__ = ["READER_ROLE", "WRITER_ROLE", "Schema"]
