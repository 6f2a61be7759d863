"""What keeps the repository legible: generated docs are fresh, ruff passes, the README stays a user's
page of at most 8 KB whose links all resolve, and no two modules share a name."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from streamscore.settings import REPO_ROOT, configuration_markdown

PACKAGES = ("streamscore", "trainer", "worker", "export", "ops")


def test_configuration_doc_is_generated_from_the_settings() -> None:
    written = (REPO_ROOT / "docs" / "configuration.md").read_text()
    assert written == configuration_markdown(), "docs/configuration.md is stale: run `streamscore config-doc`"


def test_every_setting_has_a_description() -> None:
    from streamscore.settings import Settings

    assert [name for name, field in Settings.model_fields.items() if not field.description] == []


def _ruff() -> list[str]:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is part of the test extra: `pip install -e '.[test]'`")
    return [found]


def test_ruff_lint_passes() -> None:
    result = subprocess.run([*_ruff(), "check", "--no-cache", str(REPO_ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_nothing_to_change() -> None:
    result = subprocess.run(
        [*_ruff(), "format", "--check", "--no-cache", str(REPO_ROOT)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_is_short_and_every_link_resolves() -> None:
    readme = REPO_ROOT / "README.md"
    assert len(readme.read_bytes()) <= 8192
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme.read_text())
    assert links, "the README links the docs"
    broken = [
        link for link in links if not link.startswith(("http://", "https://")) and not (REPO_ROOT / link).exists()
    ]
    assert broken == []


def test_docs_links_resolve() -> None:
    broken = []
    for doc in (REPO_ROOT / "docs").rglob("*.md"):
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if not link.startswith(("http://", "https://", "mailto:")) and not (doc.parent / link).exists():
                broken.append(f"{doc.relative_to(REPO_ROOT)} → {link}")
    assert broken == []


def test_no_two_modules_share_a_name() -> None:
    allowed = {"__init__", "__main__", "errors"}  # each stage keeps its errors in its own errors.py
    names = Counter(p.stem for package in PACKAGES for p in (REPO_ROOT / package).rglob("*.py"))
    assert sorted(name for name, n in names.items() if n > 1 and name not in allowed) == []
