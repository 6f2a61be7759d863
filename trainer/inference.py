"""Batched, length-sorted PyTorch inference for the text model (evaluation and item embeddings)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from trainer.model import MultiTaskTextModel
from trainer.text_batches import collate, sequential_batches, tokenize


@torch.no_grad()
def predict_texts(
    model: MultiTaskTextModel,
    tokenizer,
    texts: Sequence[str],
    max_length: int,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    desc: str | None = None,
) -> dict[str, np.ndarray]:
    """Every output of the model for ``texts``, in input order, as float32 numpy arrays."""
    model.eval()
    data = tokenize(tokenizer, texts, np.zeros(len(texts)), max_length)
    outputs: dict[str, np.ndarray] = {}
    batches = sequential_batches(data.lengths, batch_size)
    for batch in tqdm(batches, desc=desc, disable=desc is None, leave=False):
        ids, mask = collate([data.input_ids[i] for i in batch], tokenizer.pad_token_id)
        result = model(ids.to(device), mask.to(device))
        for name, value in result.items():
            if name not in outputs:
                outputs[name] = np.zeros((len(texts), *value.shape[1:]), dtype=np.float32)
            outputs[name][batch] = value.float().cpu().numpy()
    return outputs
