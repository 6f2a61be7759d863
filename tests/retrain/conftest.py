"""The retrain tests run against the same private deployments as the streaming tests."""

from __future__ import annotations

from tests.streaming.conftest import deployment

__all__ = ["deployment"]
