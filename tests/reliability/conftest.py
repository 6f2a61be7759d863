"""The reliability suite reuses the streaming tests' private deployment (topics, group, schema, workers), with
the news path's store overlap on: the mode whose delivery guarantee has more to get wrong (a write in flight
while the next batch is scored). The default, one batch at a time, runs through every test in
``tests/streaming``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streamscore.settings import Settings
from tests.conftest import Schema
from tests.streaming.conftest import Deployment, private_deployment

OVERLAP = {"STREAMSCORE_WORKER_OVERLAP_STORE": "true"}

__all__ = ["OVERLAP", "Deployment", "deployment"]


@pytest.fixture
def deployment(
    stack: Settings, pg_schema: Schema, topic_prefix: str, models_dir: Path, tmp_path: Path
) -> Iterator[Deployment]:
    with private_deployment(stack, pg_schema, topic_prefix, models_dir, tmp_path, **OVERLAP) as dep:
        yield dep
