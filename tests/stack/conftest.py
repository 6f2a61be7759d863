"""The stack tests use the session's Kafka and PostgreSQL fixtures from ``tests/conftest.py``."""

from __future__ import annotations

from streamscore.db.connection import READER_ROLE, WRITER_ROLE
from tests.conftest import Schema

__all__ = ["READER_ROLE", "WRITER_ROLE", "Schema"]
