"""The layers of ``docs/architecture.md`` as a fact the build keeps: imports point down only.

Every import statement counts, including those inside functions (the CLI imports stages lazily, and an
upward import hidden in a function is still an upward dependency). The checker is run on the real tree and
on a planted tree with one upward import, so it is shown to catch what it claims to.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from streamscore.settings import REPO_ROOT

LAYERS: dict[str, int] = {"streamscore": 1, "trainer": 2, "worker": 2, "export": 3, "ops": 4}
"""Package → layer. A module may import its own package and any package of a lower layer."""

FORBIDDEN: dict[str, tuple[str, ...]] = {
    # the contracts stay free of every stage's heavy dependencies
    "streamscore": ("torch", "transformers", "optimum", "peft", "faust", "mode"),
    # the worker serves bundles only
    "worker": ("torch", "transformers", "optimum", "peft"),
    "trainer": ("faust", "mode", "aiokafka"),
    # pure domain logic: no I/O, no adapters, no wiring
    "worker.domain": (
        "faust",
        "mode",
        "aiokafka",
        "kafka",
        "sqlalchemy",
        "psycopg2",
        "onnxruntime",
        "prometheus_client",
        "worker.adapters",
        "worker.paths",
        "worker.pipeline",
        "worker.runtime",
        "worker.app",
    ),
    # adapters know the domain, never the wiring above them
    "worker.adapters": ("worker.paths", "worker.pipeline", "worker.runtime", "worker.app"),
    "worker.paths": ("worker.pipeline", "worker.runtime", "worker.app", "faust", "mode"),
}


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    imported: str
    why: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported} ({self.why})"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """Every absolute module name the file imports, at any depth; relative imports resolved against ``module``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:  # `from worker import store` imports worker.store
                yield node.lineno, f"{base}.{alias.name}"


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(root: Path) -> list[Violation]:
    found: list[Violation] = []
    for package, layer in LAYERS.items():
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(root, path)
            for line, name in imports(path, module):
                top = name.split(".")[0]
                if top in LAYERS and top != package and LAYERS[top] >= layer:
                    found.append(
                        Violation(module, line, name, f"layer {LAYERS[top]} {top} is not below layer {layer} {package}")
                    )
                for scope, banned in FORBIDDEN.items():
                    if _within(module, scope):
                        hit = next((b for b in banned if _within(name, b)), None)
                        if hit:
                            found.append(Violation(module, line, name, f"{scope} must not import {hit}"))
    return sorted(set(found), key=lambda v: (v.module, v.line, v.imported))


def test_imports_point_down_only() -> None:
    assert [str(v) for v in violations(REPO_ROOT)] == []


def test_every_package_is_assigned_a_layer() -> None:
    packages = {p.parent.name for p in REPO_ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(LAYERS)


def test_a_planted_upward_import_is_caught(tmp_path: Path) -> None:
    files = {
        "streamscore/__init__.py": "",
        "streamscore/settings.py": "def load():\n    from ops.cli import app  # hidden in a function\n    return app\n",
        "trainer/__init__.py": "from worker import runtime\n",
        "worker/__init__.py": "",
        "worker/domain/__init__.py": "",
        "worker/domain/ranking.py": "import numpy\nfrom ..adapters import results_store\n",
        "worker/adapters/__init__.py": "",
        "worker/adapters/results_store.py": "import sqlalchemy\nfrom streamscore import settings\n",
        "export/__init__.py": "import trainer\n",
        "ops/__init__.py": "import export, worker, trainer, streamscore\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = {(v.module, v.imported) for v in violations(tmp_path)}
    assert ("streamscore.settings", "ops.cli") in found
    assert ("trainer", "worker") in found  # two stages of one layer do not import each other
    assert ("worker.domain.ranking", "worker.adapters") in found  # relative imports are resolved
    assert not any(module in ("ops", "export", "worker.adapters.results_store") for module, _ in found)
