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


def _rollback_file(migration_path: str) -> Path:
    path = Path(migration_path)
    return path.with_name(path.stem + ".rollback.sql")


def migration_status(sqlalchemy_url: str, schema: str | None = None, sql_dir: Path = SQL_DIR) -> list[dict]:
    """Every migration shipped in ``sql/``, in order, with whether it is applied and whether it can be rolled
    back (a ``.rollback.sql`` beside it)."""
    import psycopg2
    from yoyo import get_backend, read_migrations

    try:
        backend = get_backend(yoyo_url(sqlalchemy_url, schema))
        migrations = read_migrations(str(sql_dir))
        applied = set(backend.get_applied_migration_hashes())
    except psycopg2.Error as exc:
        raise MigrationError(str(exc).strip()) from exc
    return [
        {
            "id": m.id,
            "applied": m.hash in applied,
            "rollback": _rollback_file(m.path).is_file(),
        }
        for m in migrations
    ]


def rollback(sqlalchemy_url: str, steps: int = 1, schema: str | None = None, sql_dir: Path = SQL_DIR) -> list[str]:
    """Roll back the last ``steps`` applied migrations with their shipped ``.rollback.sql`` files, newest
    first; returns the ids rolled back. Refuses (changing nothing) if one of them has no rollback file."""
    import psycopg2
    from yoyo import get_backend, read_migrations

    try:
        backend = get_backend(yoyo_url(sqlalchemy_url, schema))
        migrations = read_migrations(str(sql_dir))
        with backend.lock():
            applied = backend.to_rollback(migrations)[:steps]
            missing = [m.id for m in applied if not _rollback_file(m.path).is_file()]
            if missing:
                raise MigrationError(f"no rollback file for {', '.join(missing)}: nothing was rolled back")
            backend.rollback_migrations(applied)
    except psycopg2.Error as exc:
        raise MigrationError(str(exc).strip()) from exc
    rolled = [m.id for m in applied]
    logger.info("migrations rolled back", extra={"rolled_back": ",".join(rolled) or "none"})
    return rolled


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
