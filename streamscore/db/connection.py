"""Connection URLs for the four roles, from ``DATABASE_URL`` or the local cluster, and engine creation."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from streamscore.security import postgres_query
from streamscore.settings import Settings

WRITER_ROLE = "streamscore_writer"
READER_ROLE = "streamscore_reader"
RETRAINER_ROLE = "streamscore_retrainer"


def _local_url(settings: Settings, user: str) -> str:
    return f"postgresql+psycopg2://{user}@127.0.0.1:{settings.pg_port}/{settings.pg_database}"


def _with_ssl(url: str, settings: Settings) -> str:
    """The configured libpq SSL parameters (``STREAMSCORE_PG_SSLMODE``…) on top of the URL's own."""
    extra = postgres_query(settings)
    if not extra:
        return url
    parsed = make_url(url)
    return parsed.update_query_dict({**extra, **parsed.query}).render_as_string(hide_password=False)


def admin_url(settings: Settings) -> str:
    """Owner of the schema: runs migrations. ``DATABASE_URL`` when given, else the local cluster's superuser."""
    return _with_ssl(
        _normalise(settings.database_url) if settings.database_url else _local_url(settings, "streamscore"), settings
    )


def writer_url(settings: Settings) -> str:
    """The workers' role: rows only, no DDL."""
    if settings.writer_database_url:
        return _with_ssl(_normalise(settings.writer_database_url), settings)
    return _with_ssl(_local_url(settings, WRITER_ROLE), settings) if not settings.database_url else admin_url(settings)


def reader_url(settings: Settings) -> str:
    """The dashboards' role: the views only."""
    if settings.reader_database_url:
        return _with_ssl(_normalise(settings.reader_database_url), settings)
    return _with_ssl(_local_url(settings, READER_ROLE), settings) if not settings.database_url else admin_url(settings)


def retrainer_url(settings: Settings) -> str:
    """The retrainer's role: reads the stored events and feedback, writes nothing but the model tables."""
    if settings.retrainer_database_url:
        return _with_ssl(_normalise(settings.retrainer_database_url), settings)
    if settings.database_url:
        return admin_url(settings)
    return _with_ssl(_local_url(settings, RETRAINER_ROLE), settings)


def _normalise(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` URLs as given by most providers; use psycopg2."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def with_schema(url: str, schema: str) -> str:
    """The same URL with ``search_path`` set to ``schema`` (tests use one schema per test)."""
    parsed = make_url(url)
    return parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def make_engine(url: str, **kwargs) -> Engine:
    return create_engine(url, pool_pre_ping=True, future=True, **kwargs)
