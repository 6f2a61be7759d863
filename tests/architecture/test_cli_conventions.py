"""The CLI's conventions, which scripts and supervisors rely on: a version flag, results on stdout and errors
on stderr, exit codes that tell a usage error from a runtime failure from a refused model, choices as enums."""

from __future__ import annotations

import tomllib
from enum import Enum

import typer
from typer.testing import CliRunner

from ops.cli import ExitCode, app
from streamscore import __version__
from streamscore.settings import REPO_ROOT
from trainer.retrain_gate import EXIT_NOTHING_TO_LEARN, EXIT_REFUSED


def test_version_flag() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"streamscore {__version__}"
    assert tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"] == __version__


def test_usage_errors_exit_2_and_runtime_failures_exit_1_on_stderr(tmp_path) -> None:
    usage = CliRunner().invoke(app, ["score", "--task", "poetry"])
    assert usage.exit_code == ExitCode.USAGE == 2 and "poetry" in usage.stderr
    missing = CliRunner().invoke(app, ["score", "--model", str(tmp_path / "none"), "--input", "-"], input="")
    assert missing.exit_code == ExitCode.FAILURE == 1
    assert missing.stdout == "" and "error" in missing.stderr
    bad_interval = CliRunner().invoke(app, ["db", "prune", "--older-than", "soon"])
    assert bad_interval.exit_code == 1 and "look-back like 7d" in bad_interval.stderr
    assert ExitCode.REFUSED == EXIT_REFUSED == 3 and ExitCode.NOTHING_TO_LEARN == EXIT_NOTHING_TO_LEARN == 4


def test_one_log_control_and_enum_choices() -> None:
    root = typer.main.get_command(app)
    names = {opt for p in root.params for opt in p.opts}
    assert "--log-level" in names and "--verbose" not in names
    worker = root.commands["worker"]  # type: ignore[attr-defined]
    assert not any("loglevel" in opt for p in worker.params for opt in p.opts), "the worker follows --log-level"
    score = root.commands["score"]  # type: ignore[attr-defined]
    annotations = {p.name: p.type_descriptor.annotation for p in score.params}
    assert issubclass(annotations["task"], Enum) and issubclass(annotations["variant"], Enum)


def test_benchmarks_write_where_the_user_says_not_into_docs() -> None:
    bench = typer.main.get_command(app).commands["bench"]  # type: ignore[attr-defined]
    for name, command in bench.commands.items():
        out = next((p for p in command.params if p.name == "out"), None)
        if out is not None:
            assert "docs" not in str(out.default), f"bench {name} writes into docs/ by default"
