"""The tokenizer a model is trained with, which is also the one it is served with.

Financial news on social media ends in short links (``https://t.co/bd0xbFGjkT``) whose random path
WordPiece cuts into a dozen pieces: 48 % of the validation headlines carry one, and they make up 27 % of all
headline tokens. Those pieces carry no sentiment, yet every one of them costs as much compute as a word. So
the tokenizer rewrites each link to one placeholder word before anything else. The presence of a link (a
signal: 69 % of the training headlines with a link are
neutral, 61 % of those without) is kept, and its noise is dropped.

The rewrite is a normaliser inside the tokenizer itself (``tokenizer.json``), not a preprocessing step next
to it. Training, evaluation, the exported bundle, the ONNX scorer and any script that loads the checkpoint's
tokenizer therefore see the same text, and none of them can forget it. A checkpoint trained without it keeps
its own tokenizer and is served as it was trained.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Regex, Tokenizer, normalizers
from transformers import AutoTokenizer, PreTrainedTokenizerBase

LINK_PATTERN = r"(?i:https?://|www\.)\S+"
LINK_PLACEHOLDER = "http"
"""One WordPiece token in MiniLM's vocabulary, and the word the pretrained encoder has seen links start with."""


def load_tokenizer(encoder_dir: Path, collapse_links: bool = True) -> PreTrainedTokenizerBase:
    """The pretrained encoder's tokenizer, with links collapsed unless ``collapse_links`` is false."""
    tokenizer = AutoTokenizer.from_pretrained(str(encoder_dir))
    if collapse_links:
        add_link_normaliser(tokenizer)
    return tokenizer


def add_link_normaliser(tokenizer: PreTrainedTokenizerBase) -> None:
    """Put the link rewrite in front of the tokenizer's own normaliser (BERT's clean-up and lower-casing).
    Idempotent: a tokenizer that already collapses links is left as it is."""
    backend = tokenizer.backend_tokenizer
    if collapses_links(backend):
        return
    rewrite = normalizers.Replace(Regex(LINK_PATTERN), LINK_PLACEHOLDER)
    backend.normalizer = normalizers.Sequence([rewrite, backend.normalizer] if backend.normalizer else [rewrite])


def remove_link_normaliser(backend: Tokenizer) -> None:
    """Take the link rewrite out of a ``tokenizers.Tokenizer`` again, so that a benchmark can measure, with the
    same weights, what the rewrite saves."""
    state = json.loads(backend.to_str())
    if not _has_link_rewrite(state):
        return
    kept = [step for step in _normaliser_steps(state) if not _is_link_rewrite(step)]
    state["normalizer"] = (kept[0] if len(kept) == 1 else {"type": "Sequence", "normalizers": kept}) if kept else None
    backend.normalizer = Tokenizer.from_str(json.dumps(state)).normalizer


def collapses_links(backend: Tokenizer) -> bool:
    """Whether a ``tokenizers.Tokenizer`` (a transformers tokenizer's ``backend_tokenizer``, or one read from
    ``tokenizer.json``) rewrites links, as the bundle manifest and the evaluation report record it."""
    return _has_link_rewrite(json.loads(backend.to_str()))


def _has_link_rewrite(tokenizer_json: dict) -> bool:
    return any(_is_link_rewrite(step) for step in _normaliser_steps(tokenizer_json))


def _normaliser_steps(tokenizer_json: dict) -> list[dict]:
    normaliser = tokenizer_json.get("normalizer") or {}
    return (
        normaliser.get("normalizers", [])
        if normaliser.get("type") == "Sequence"
        else [normaliser]
        if normaliser
        else []
    )


def _is_link_rewrite(step: dict) -> bool:
    return step.get("type") == "Replace" and step.get("pattern", {}).get("Regex") == LINK_PATTERN
