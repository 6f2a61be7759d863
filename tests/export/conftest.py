"""One exported bundle per session, from the session's quick checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamscore.bundle import Bundle


@pytest.fixture(scope="session")
def models_dir(quick_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.exporter import export_bundle

    folder = tmp_path_factory.mktemp("models")
    export_bundle(quick_run / "checkpoint", folder)
    return folder


@pytest.fixture(scope="session")
def bundle(models_dir: Path) -> Bundle:
    return Bundle.load(models_dir / "current")
