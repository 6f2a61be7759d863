"""The multi-task text model: one MiniLM encoder, mean pooling, and a head per text task.

Outputs (names shared with the ONNX export and the worker):

* ``embedding`` — the L2-normalised mean-pooled output of encoder layer ``embedding_layer`` (3 of 6), used to
  represent catalog items. Not the last layer: fine-tuning specialises the top layers for sentiment and
  stars, and item vectors from there lost 0.017 RMSE on MovieLens dev against layer 3 (0.875 vs 0.859);
  layers 2–4 were within 0.002 of each other;
* ``sentiment_logits`` — negative / neutral / positive;
* ``review_logits`` — 1..5 stars; ``review_rating`` is their expectation, a continuous star rating.

The user–item head lives in :mod:`trainer.recommender`: it consumes cached ``embedding`` vectors so that
scoring a click at stream time needs no transformer call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import BertConfig, BertModel

REVIEW_STARS = (1, 2, 3, 4, 5)


@dataclass
class TextModelConfig:
    """What is needed to rebuild :class:`MultiTaskTextModel` (saved as ``config.json`` in a checkpoint)."""

    encoder: dict = field(default_factory=dict)
    n_sentiment: int = 3
    n_stars: int = len(REVIEW_STARS)
    dropout: float = 0.1
    max_length_sentiment: int = 64
    max_length_review: int = 128
    max_length_item: int = 64
    embedding_layer: int = 3
    """Hidden state pooled into ``embedding`` (0 = token embeddings, 6 = last layer of MiniLM-L6)."""

    def to_dict(self) -> dict:
        return asdict(self)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of token vectors where ``mask`` is 1 (padding ignored)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class MultiTaskTextModel(nn.Module):
    """MiniLM encoder with sentiment and review-rating heads on the mean-pooled output."""

    def __init__(self, config: TextModelConfig):
        super().__init__()
        self.config = config
        self.encoder = BertModel(BertConfig(**config.encoder), add_pooling_layer=False)
        hidden = self.encoder.config.hidden_size
        self.dropout = nn.Dropout(config.dropout)
        self.sentiment_head = nn.Linear(hidden, config.n_sentiment)
        self.review_head = nn.Linear(hidden, config.n_stars)
        self.register_buffer("stars", torch.tensor(REVIEW_STARS, dtype=torch.float32), persistent=False)

    @property
    def embedding_dim(self) -> int:
        return int(self.encoder.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
        ).hidden_states
        pooled = mean_pool(hidden[-1], attention_mask)
        item = mean_pool(hidden[self.config.embedding_layer], attention_mask)
        features = self.dropout(pooled)
        review_logits = self.review_head(features)
        return {
            "embedding": nn.functional.normalize(item, dim=-1),
            "sentiment_logits": self.sentiment_head(features),
            "review_logits": review_logits,
            "review_rating": (review_logits.softmax(dim=-1) * self.stars).sum(dim=-1),
        }

    @classmethod
    def from_pretrained_encoder(cls, encoder_dir, **overrides) -> MultiTaskTextModel:
        """Fresh heads on top of the pretrained encoder weights (the start of fine-tuning)."""
        bert_config = BertConfig.from_pretrained(str(encoder_dir))
        config = TextModelConfig(encoder=_encoder_config_dict(bert_config), **overrides)
        model = cls(config)
        model.encoder.load_state_dict(pretrained_encoder_weights(Path(encoder_dir)))
        return model


UNUSED_PRETRAINED_KEYS = ("pooler.", "embeddings.position_ids")
"""The sentence-transformers checkpoint's pooler (we mean-pool instead) and a buffer newer transformers rebuild."""


def pretrained_encoder_weights(encoder_dir: Path) -> dict[str, torch.Tensor]:
    """The encoder's weights without the parts this model does not use, so that loading them is strict: a
    missing or renamed weight fails loudly, and nothing is reported as "not used" (which users read as an error)."""
    state = load_file(str(encoder_dir / "model.safetensors"))
    return {k: v for k, v in state.items() if not k.startswith(UNUSED_PRETRAINED_KEYS)}


def _encoder_config_dict(config: BertConfig) -> dict:
    keep = (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "hidden_act",
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "max_position_embeddings",
        "type_vocab_size",
        "initializer_range",
        "layer_norm_eps",
        "pad_token_id",
    )
    return {k: getattr(config, k) for k in keep}
