"""Optimum's view of the multi-task text model: a small PreTrainedModel wrapper and a custom OnnxConfig.

Optimum exports ``PreTrainedModel`` instances described by an ``OnnxConfig``; the trainer's model is a plain
``nn.Module``, so :class:`StreamscoreTextModel` wraps it with a ``PretrainedConfig`` that carries the BERT
dimensions Optimum's dummy-input generators need, and :class:`StreamscoreTextOnnxConfig` names the inputs and
the four outputs with their dynamic axes.
"""

from __future__ import annotations

import torch
from optimum.exporters.onnx.config import TextEncoderOnnxConfig
from optimum.utils import NormalizedTextConfig
from transformers import PretrainedConfig, PreTrainedModel

from trainer.model import MultiTaskTextModel

TEXT_OUTPUTS = ("embedding", "sentiment_logits", "review_logits", "review_rating")


class StreamscoreTextConfig(PretrainedConfig):
    model_type = "streamscore-multitask"


class StreamscoreTextModel(PreTrainedModel):
    """``forward(input_ids, attention_mask)`` → the four named outputs, in :data:`TEXT_OUTPUTS` order."""

    config_class = StreamscoreTextConfig

    def __init__(self, config: StreamscoreTextConfig, model: MultiTaskTextModel):
        super().__init__(config)
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model(input_ids, attention_mask)
        return {name: out[name] for name in TEXT_OUTPUTS}

    @classmethod
    def wrap(cls, model: MultiTaskTextModel) -> StreamscoreTextModel:
        config = StreamscoreTextConfig(**model.config.encoder)
        return cls(config, model.eval()).eval()


class StreamscoreTextOnnxConfig(TextEncoderOnnxConfig):
    """Two int64 inputs (no token types: MiniLM was trained with one segment) and four outputs."""

    NORMALIZED_CONFIG_CLASS = NormalizedTextConfig
    ATOL_FOR_VALIDATION = 1e-4
    DEFAULT_ONNX_OPSET = 17

    @property
    def inputs(self) -> dict[str, dict[int, str]]:
        axes = {0: "batch_size", 1: "sequence_length"}
        return {"input_ids": axes, "attention_mask": dict(axes)}

    @property
    def outputs(self) -> dict[str, dict[int, str]]:
        return {
            "embedding": {0: "batch_size"},
            "sentiment_logits": {0: "batch_size"},
            "review_logits": {0: "batch_size"},
            "review_rating": {0: "batch_size"},
        }
