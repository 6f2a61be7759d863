"""Shared fixtures. Expensive artefacts (a quick-profile training run) are built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamscore.settings import REPO_ROOT, Settings

DATA_DIR = REPO_ROOT.parent / "shared" / "data"


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

    from streamscore.cli import app

    run_dir = tmp_path_factory.mktemp("quick") / "run"
    env = {"STREAMSCORE_DATA_DIR": str(settings.data_dir), "STREAMSCORE_RUNS_DIR": str(settings.runs_dir)}
    result = CliRunner().invoke(app, ["train", "--profile", "quick", "--out", str(run_dir)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return run_dir
