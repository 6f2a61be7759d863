"""Apply the plain-SQL migrations in ``sql/`` with yoyo-migrations (it records what ran in its own tables)."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.engine import make_url

from streamscore.errors import StreamscoreError

logger = logging.getLogger(__name__)


class MigrationError(StreamscoreError):
    """A migration failed (the database rolled it back); the message is PostgreSQL's."""


SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


def yoyo_url(sqlalchemy_url: str, schema: str | None = None) -> str:
    """yoyo names the psycopg2 backend plain ``postgresql://`` and takes the schema as a ``schema`` argument."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    query = {k: v for k, v in url.query.items() if k != "options"}
    if schema:
        query["schema"] = schema
    return url.set(query=query).render_as_string(hide_password=False)


def migrate(sqlalchemy_url: str, schema: str | None = None, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply every pending migration; returns the ids applied (empty when up to date)."""
    import psycopg2
    from yoyo import get_backend, read_migrations

    try:
        backend = get_backend(yoyo_url(sqlalchemy_url, schema))
        migrations = read_migrations(str(sql_dir))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
    except psycopg2.Error as exc:
        raise MigrationError(str(exc).strip()) from exc
    applied = [m.id for m in pending]
    logger.info("migrations applied", extra={"applied": ",".join(applied) or "none", "schema": schema or "default"})
    return applied


def set_role_passwords(sqlalchemy_url: str, passwords: dict[str, str]) -> list[str]:
    """``ALTER ROLE … PASSWORD`` for the given roles (created by the migrations without one, for the local
    trust-auth cluster); a real server gets them from the environment, never from the repository."""
    from sqlalchemy import create_engine

    engine = create_engine(sqlalchemy_url)
    try:
        with engine.begin() as conn:
            for role, password in passwords.items():
                # psycopg2 interpolates client-side, so a parameter works even in a utility statement
                conn.exec_driver_sql(f'ALTER ROLE "{role}" PASSWORD %s', (password,))
    finally:
        engine.dispose()
    return sorted(passwords)
