"""The warnings the TorchScript ONNX exporter prints on every export, kept out of the user's output.

Both graphs of a bundle go through ``torch.onnx``'s TorchScript exporter: Optimum 0.1.0 drives it for the
text model, and the user–item head uses it directly (:mod:`export.recommender_graph`). torch 2.9 announces on
each call that a newer exporter will become the default, and the tracer warns about every Python branch on a
tensor's shape inside transformers' BERT. Neither is anything a user can act on: the exporter is fixed by the
pinned Optimum, and what a shape branch could break (other batch sizes and lengths) is what the parity checks
of :mod:`export.validation` measure on real held-out texts of varied shapes, stopping the export on a breach.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch

LEGACY_EXPORTER_NOTICES = (
    "You are using the legacy TorchScript-based ONNX export",
    "The feature will be removed. Please remove usage of this function",
)


@contextmanager
def quiet_torchscript_export() -> Iterator[None]:
    """Inside: the tracer's warnings and torch's notices about its legacy exporter are not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        for notice in LEGACY_EXPORTER_NOTICES:
            warnings.filterwarnings("ignore", message=notice, category=DeprecationWarning)
        yield
