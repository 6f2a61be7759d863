"""Shared fixtures. Expensive artefacts (a quick-profile training run, its exported bundle, the running
Kafka and PostgreSQL) are built once per session; each test gets unique topic names and a fresh schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from ops.stack.manager import stack_up
from streamscore.bundle import Bundle
from streamscore.db.connection import admin_url, make_engine, reader_url, retrainer_url, with_schema, writer_url
from streamscore.db.migrate import migrate
from streamscore.settings import REPO_ROOT, Settings

DATA_DIR = REPO_ROOT.parent / "shared" / "data"
SERVICE_FIXTURES = frozenset({"stack", "quick_run"})
"""Fixtures that start Kafka and PostgreSQL or train a model: a test that needs one is an integration test."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test is either ``unit`` (no service, no training run) or ``integration``; the split follows
    from the fixtures a test asks for, so it cannot go stale. A test that trains a model in its own body
    says so with ``@pytest.mark.integration``."""
    for item in items:
        needs_services = SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if needs_services or item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.fail(f"the shared datasets are expected at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(scope="session")
def settings(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=data_dir, runs_dir=tmp_path_factory.mktemp("runs"), _env_file=None)


@pytest.fixture(scope="session")
def quick_run(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder trained end to end with the quick profile (checkpoint + report), shared by all tests."""
    from typer.testing import CliRunner

    from ops.cli import app

    run_dir = tmp_path_factory.mktemp("quick") / "run"
    env = {"STREAMSCORE_DATA_DIR": str(settings.data_dir), "STREAMSCORE_RUNS_DIR": str(settings.runs_dir)}
    result = CliRunner().invoke(
        app, ["train", "--profile", "quick", "--out", str(run_dir)], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture(scope="session")
def models_dir(quick_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding the quick checkpoint's bundle, with ``current`` pointing at it."""
    from export.exporter import export_bundle

    folder = tmp_path_factory.mktemp("models")
    export_bundle(quick_run / "checkpoint", folder)
    return folder


@pytest.fixture(scope="session")
def bundle(models_dir: Path) -> Bundle:
    return Bundle.load(models_dir / "current")


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
    retrainer: str


@pytest.fixture
def pg_schema(stack: Settings) -> Iterator[Schema]:
    """A new schema with every migration applied, and URLs of the three roles pointed at it."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = make_engine(admin_url(stack))
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    migrate(admin_url(stack), schema=name)
    yield Schema(
        name,
        with_schema(admin_url(stack), name),
        with_schema(writer_url(stack), name),
        with_schema(reader_url(stack), name),
        with_schema(retrainer_url(stack), name),
    )
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    engine.dispose()
