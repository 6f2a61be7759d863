"""The reliability suite reuses the streaming tests' private deployment (topics, group, schema, workers)."""

from __future__ import annotations

from tests.streaming.conftest import Deployment, deployment

__all__ = ["Deployment", "deployment"]
