"""The user–item head as its own small ONNX graph, exported with ``torch.onnx`` directly.

Optimum's exporter is built around transformers architectures and their dummy-input generators; this head
is a few embedding tables and matrix products with inputs of different kinds (ids, profiles, candidates),
which Optimum has no config family for. ``torch.onnx`` (the same TorchScript exporter Optimum drives) exports
it as is, and :mod:`export.validation` checks it against PyTorch like the text graph.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from export.torchscript_warnings import quiet_torchscript_export
from trainer.recommender import HybridRecommender

INPUTS = ("user_index", "user_profile", "item_index", "item_embedding")
OUTPUTS = ("score", "predicted_rating")


class RecommenderGraph(nn.Module):
    """Scores every candidate item for every user of a micro-batch: outputs are ``(users, items)``."""

    def __init__(self, model: HybridRecommender):
        super().__init__()
        self.model = model.eval()

    def forward(self, user_index, user_profile, item_index, item_embedding):
        rank, rate = self.model.ranking_tower, self.model.rating_tower
        p, _ = rank.user_side(user_index, user_profile)
        q, b = rank.item_side(item_index, item_embedding)
        score = p @ q.T + b.unsqueeze(0)
        pr, bu = rate.user_side(user_index, user_profile)
        qr, bi = rate.item_side(item_index, item_embedding)
        rating = self.model.global_mean + bu.unsqueeze(1) + bi.unsqueeze(0) + pr @ qr.T
        return score, rating.clamp(0.5, 5.0)


def export_recommender(model: HybridRecommender, output: Path, embedding_dim: int, opset: int = 17) -> Path:
    graph = RecommenderGraph(model)
    dummy = (
        torch.tensor([1, 0]),
        torch.randn(2, embedding_dim),
        torch.tensor([1, 2, 0]),
        torch.randn(3, embedding_dim),
    )
    with quiet_torchscript_export():
        torch.onnx.export(
            graph,
            dummy,
            str(output),
            input_names=list(INPUTS),
            output_names=list(OUTPUTS),
            dynamic_axes={
                "user_index": {0: "users"},
                "user_profile": {0: "users"},
                "item_index": {0: "items"},
                "item_embedding": {0: "items"},
                "score": {0: "users", 1: "items"},
                "predicted_rating": {0: "users", 1: "items"},
            },
            opset_version=opset,
            dynamo=False,
        )
    return output
