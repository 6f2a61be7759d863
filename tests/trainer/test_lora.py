"""LoRA mode trains adapters only and merges back into a plain checkpoint of the same shape."""

from __future__ import annotations

import pytest
import torch

from trainer.encoder import pretrained_encoder_dir
from trainer.model import MultiTaskTextModel
from trainer.profiles import get_profile
from trainer.training import _wrap_lora


@pytest.mark.integration
def test_lora_trains_adapters_and_merges_to_plain_weights() -> None:
    torch.manual_seed(0)
    model = MultiTaskTextModel.from_pretrained_encoder(pretrained_encoder_dir())
    plain_keys = set(model.state_dict())
    before = model.encoder.embeddings.word_embeddings.weight.detach().clone()
    _wrap_lora(model, get_profile("quick").with_overrides(lora=True))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in trainable) and all("lora_" in n or "head" in n for n in trainable)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(1000, 5000, (4, 12))
    mask = torch.ones_like(ids)
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(ids, mask)["sentiment_logits"], torch.tensor([0, 1, 2, 0]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        tuned = model(ids, mask)["sentiment_logits"]
    model.encoder = model.encoder.merge_and_unload()
    assert set(model.state_dict()) == plain_keys
    assert torch.equal(model.encoder.embeddings.word_embeddings.weight, before)  # frozen base weights untouched
    with torch.no_grad():
        merged = model(ids, mask)["sentiment_logits"]
    assert torch.allclose(merged, tuned, atol=1e-4), "merging must not change what the model computes"
