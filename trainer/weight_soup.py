"""A uniform model soup: the element-wise mean of the weights of several fine-tuned copies of one model.

Copies fine-tuned from the same pretrained encoder and the same initial heads, differing only in batch order
and dropout, stay in one basin of the loss, so the mean of their weights scores about like the ensemble of
their predictions (Wortsman et al., *Model soups*, ICML 2022) while serving one model: the same graph, the
same speed. What it costs is training, once per copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def average_weights(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of each floating-point tensor over ``states`` (computed in float32, returned in the tensor's own
    dtype); integer tensors (counters, index buffers) must agree across the states and are kept as they are.

    Raises ``ValueError`` when there is nothing to average or the states are not of one model."""
    if not states:
        raise ValueError("a soup needs at least one state")
    names = list(states[0])
    for index, state in enumerate(states[1:], start=1):
        if set(state) != set(names):
            missing, extra = sorted(set(names) - set(state)), sorted(set(state) - set(names))
            raise ValueError(f"state {index} is not of the same model: missing {missing[:3]}, extra {extra[:3]}")
    soup: dict[str, torch.Tensor] = {}
    for name in names:
        tensors = [state[name].detach().cpu() for state in states]
        first = tensors[0]
        if any(t.shape != first.shape for t in tensors):
            raise ValueError(f"{name}: shapes differ across the states: {sorted({tuple(t.shape) for t in tensors})}")
        if first.is_floating_point():
            soup[name] = torch.stack([t.float() for t in tensors]).mean(dim=0).to(first.dtype)
        else:
            if any(not torch.equal(t, first) for t in tensors[1:]):
                raise ValueError(f"{name}: a non-float tensor differs across the states and cannot be averaged")
            soup[name] = first.clone()
    return soup
