"""The model bundle: a self-contained, versioned folder the worker serves, and the pointer to the current one.

    models/
      current -> 3f2a9c1b0d4e          (symlink, switched atomically with rename(2))
      3f2a9c1b0d4e/
        manifest.json                  version, provenance, inputs/outputs, metrics, parity, sha256 of every file
        model.onnx                     text model fp32: embedding, sentiment_logits, review_logits, review_rating
        model.int8.onnx                dynamic int8, per-channel (CPU serving)
        recommender.onnx               the user–item head (rating + ranking towers)
        recommender.json               user / item ids in row order, popular items for cold-start users
        tokenizer.json …               fast-tokenizer files

The version is derived from the content (sha256 over the files' names and hashes), so the same export gives
the same version and any change gives a new one. Loading verifies every checksum first: a tampered or
incomplete bundle is refused before a byte of it is parsed. Nothing in a bundle is a pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from streamscore.errors import BundleError

FORMAT = "streamscore-bundle/1"
MANIFEST = "manifest.json"
CURRENT = "current"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def content_version(files: dict[str, dict]) -> str:
    """12 hex digits of sha256 over ``name:sha256`` lines of every payload file, sorted by name."""
    lines = "".join(f"{name}:{meta['sha256']}\n" for name, meta in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()[:12]


def describe_files(folder: Path) -> dict[str, dict]:
    """``{name: {sha256, bytes}}`` for every regular file in ``folder`` except the manifest."""
    return {
        p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST
    }


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk."""

    path: Path
    manifest: dict

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    def file(self, name: str) -> Path:
        if name not in self.manifest["files"]:
            raise BundleError(self.path, f"has no file {name!r}")
        return self.path / name

    @classmethod
    def load(cls, path: Path | str) -> Bundle:
        """Resolve ``path`` (a bundle folder or a ``current`` pointer) and verify it completely."""
        path = Path(path)
        if path.is_dir() and not (path / MANIFEST).exists() and (path / CURRENT).exists():
            path = path / CURRENT
        folder = path.resolve()
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            raise BundleError(path, "no manifest.json (not a bundle, or an incomplete one)")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(path, f"manifest.json is not valid JSON: {exc}") from exc
        if manifest.get("format") != FORMAT:
            raise BundleError(path, f"format {manifest.get('format')!r} is not {FORMAT!r}")
        files = manifest.get("files") or {}
        for name, meta in files.items():
            target = folder / name
            if Path(name).name != name:
                raise BundleError(path, f"manifest names a file outside the bundle: {name!r}")
            if not target.is_file():
                raise BundleError(path, f"file {name} listed in the manifest is missing")
            if target.stat().st_size != meta["bytes"] or sha256_file(target) != meta["sha256"]:
                raise BundleError(path, f"checksum mismatch for {name}: the file was changed after export")
        if content_version(files) != manifest.get("version"):
            raise BundleError(path, "version does not match the files' checksums")
        return cls(folder, manifest)


def write_manifest(folder: Path, fields: dict) -> dict:
    """Checksum every file in ``folder``, derive the version, and write ``manifest.json``; returns it."""
    files = describe_files(folder)
    manifest = {"format": FORMAT, "version": content_version(files), **fields, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def point_current(models_dir: Path, version: str) -> Path:
    """Make ``models_dir/current`` point at ``version`` atomically: a reader sees the old or the new bundle,
    never a missing or half-written pointer."""
    target = models_dir / version
    if not (target / MANIFEST).is_file():
        raise BundleError(target, "cannot point at a folder without manifest.json")
    tmp = models_dir / f".{CURRENT}.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(version, target_is_directory=True)
    os.replace(tmp, models_dir / CURRENT)
    return models_dir / CURRENT


def current_version(models_dir: Path) -> str | None:
    pointer = models_dir / CURRENT
    return os.readlink(pointer) if pointer.is_symlink() else None
