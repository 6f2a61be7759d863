"""Checkpoint folder: everything export and evaluation need, in safetensors and JSON (no pickle).

checkpoint/
  config.json              format, text model and recommender configs, profile, data sources, seed
  model.safetensors        the multi-task text model (encoder + heads)
  recommender.safetensors  both towers of the user–item head, plus the cached item embeddings
  ids.json                 user and item ids in row order (row 0 of every table is "unknown"), popular items
  items.jsonl              catalog item texts in row order (what the embeddings were computed from)
  history.json             training curves
  tokenizer.json, vocab.txt, tokenizer_config.json, special_tokens_map.json
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from trainer.errors import CheckpointError
from trainer.model import MultiTaskTextModel, TextModelConfig
from trainer.recommender import HybridRecommender, IdIndex, RecommenderConfig

FORMAT = "streamscore-checkpoint/1"
REQUIRED = ("config.json", "model.safetensors", "recommender.safetensors", "ids.json", "items.jsonl", "tokenizer.json")


@dataclass
class Checkpoint:
    path: Path
    config: dict
    text_model: MultiTaskTextModel
    tokenizer: PreTrainedTokenizerBase
    recommender: HybridRecommender
    users: IdIndex
    items: IdIndex
    item_texts: list[str]
    item_embeddings: np.ndarray
    """``(n_items + 1, E)`` with row 0 zero, aligned with ``items``."""
    popular_items: list[str]
    history: dict


def save_checkpoint(
    path: Path,
    *,
    text_model: MultiTaskTextModel,
    tokenizer: PreTrainedTokenizerBase,
    recommender: HybridRecommender,
    users: IdIndex,
    items: IdIndex,
    item_texts: list[str],
    popular_items: list[str],
    item_embeddings: np.ndarray,
    history: dict,
    extra_config: dict,
) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in text_model.state_dict().items()}
    save_file(state, str(path / "model.safetensors"), metadata={"format": FORMAT})
    rec_state = {k: v.detach().contiguous().cpu() for k, v in recommender.state_dict().items()}
    rec_state["item_embeddings"] = torch.from_numpy(np.ascontiguousarray(item_embeddings, dtype=np.float32))
    save_file(rec_state, str(path / "recommender.safetensors"), metadata={"format": FORMAT})
    (path / "ids.json").write_text(json.dumps({"users": users.ids, "items": items.ids, "popular_items": popular_items}))
    with (path / "items.jsonl").open("w", encoding="utf-8") as handle:
        for item_id, text in zip(items.ids, item_texts):
            handle.write(json.dumps({"item_id": item_id, "text": text}, ensure_ascii=False) + "\n")
    (path / "history.json").write_text(json.dumps(history, indent=1))
    tokenizer.save_pretrained(str(path))
    config = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "text_model": text_model.config.to_dict(),
        "recommender": recommender.config.to_dict(),
        **extra_config,
    }
    (path / "config.json").write_text(json.dumps(config, indent=2))
    return path


def load_checkpoint(path: Path | str) -> Checkpoint:
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(path, "not a checkpoint folder")
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise CheckpointError(path, f"missing {', '.join(missing)}")
    config = json.loads((path / "config.json").read_text())
    if config.get("format") != FORMAT:
        raise CheckpointError(path, f"format {config.get('format')!r} is not {FORMAT!r}")
    text_model = MultiTaskTextModel(TextModelConfig(**config["text_model"]))
    text_model.load_state_dict(load_file(str(path / "model.safetensors")))
    rec_state = load_file(str(path / "recommender.safetensors"))
    item_embeddings = rec_state.pop("item_embeddings").numpy()
    recommender = HybridRecommender(RecommenderConfig(**config["recommender"]))
    recommender.load_state_dict(rec_state)
    ids = json.loads((path / "ids.json").read_text())
    texts = [json.loads(line)["text"] for line in (path / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    history = json.loads((path / "history.json").read_text()) if (path / "history.json").is_file() else {}
    return Checkpoint(
        path=path,
        config=config,
        text_model=text_model.eval(),
        tokenizer=AutoTokenizer.from_pretrained(str(path)),
        recommender=recommender.eval(),
        users=IdIndex(ids["users"]),
        items=IdIndex(ids["items"]),
        item_texts=texts,
        item_embeddings=item_embeddings,
        popular_items=ids.get("popular_items", []),
        history=history,
    )
