"""Micro-batch policy: flush at N events, T milliseconds after the first event, or a token budget.

Pure and clock-free (the caller passes the time), so the policy is tested without Kafka and the Faust
agents only adapt it; a batch never waits forever for its N-th event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class BatchPolicy:
    max_events: int = 256
    max_wait_ms: float = 50.0
    max_tokens: int = 8192
    """Sum of (estimated) tokens of the texts in a batch: long texts make smaller batches."""

    def __post_init__(self) -> None:
        if self.max_events < 1 or self.max_wait_ms < 0 or self.max_tokens < 1:
            raise ValueError(f"invalid batch policy {self}")


@dataclass
class MicroBatcher(Generic[T]):
    """Accumulates items; ``add`` returns a full batch when the policy says flush."""

    policy: BatchPolicy
    items: list[T] = field(default_factory=list)
    tokens: int = 0
    started_ms: float | None = None

    def add(self, item: T, tokens: int, now_ms: float) -> list[T] | None:
        """Add ``item``; if it would overflow the token budget, the batch so far is returned first and the
        item starts the next one. Returns a batch to process, or None."""
        ready: list[T] | None = None
        if self.items and self.tokens + tokens > self.policy.max_tokens:
            ready = self.take()
        if not self.items:
            self.started_ms = now_ms
        self.items.append(item)
        self.tokens += tokens
        if ready is None and len(self.items) >= self.policy.max_events:
            ready = self.take()
        return ready

    def due(self, now_ms: float) -> bool:
        """True when the oldest buffered item has waited ``max_wait_ms``."""
        return bool(self.items) and self.started_ms is not None and now_ms - self.started_ms >= self.policy.max_wait_ms

    def take(self) -> list[T]:
        batch, self.items, self.tokens, self.started_ms = self.items, [], 0, None
        return batch

    def __len__(self) -> int:
        return len(self.items)


def estimate_tokens(text: str) -> int:
    """A cheap upper-ish estimate of WordPiece tokens (about 1.3 per word, plus [CLS]/[SEP])."""
    return 2 + int(len(text.split()) * 1.3) + 1
