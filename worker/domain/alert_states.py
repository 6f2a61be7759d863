"""The surge states a worker wrote last, kept in memory between batches.

Every news batch locks the states of the entities it touches, folds its articles into them and writes them
back, in its one transaction. Reading a state back meant decoding its whole window (a busy ticker's 30 minutes
of articles) on every batch, although the worker that wrote it last usually still holds it: PostgreSQL is the
source of truth, this is a cache of it. Each write stores a random ``write_id`` beside the state; the worker
remembers the id with its copy once the transaction has committed, and trusts its copy only while the locked
row still carries that id. Any other writer (another worker, a table emptied and refilled, a failed
transaction of this one) leaves an id it does not hold, and the state is read again.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace

from worker.domain.alerts import EntityState


def new_write_id() -> int:
    """A tag for one transaction's writes: random and never 0 (0 marks a row no state was ever written to)."""
    return secrets.randbits(62) + 1


class KnownStates:
    """Least-recently-used copies of at most ``capacity`` entity states, each with the ``write_id`` it was
    stored under. ``capacity`` 0 keeps nothing (every state is read from PostgreSQL, as before)."""

    def __init__(self, capacity: int):
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.entries: OrderedDict[str, tuple[int, EntityState]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.entries)

    def current(self, stored: Mapping[str, int]) -> dict[str, EntityState]:
        """Working copies of the states whose stored ``write_id`` is the one remembered; the others must be
        read. A copy, because the batch may still fail: what is remembered changes only in :meth:`remember`."""
        found: dict[str, EntityState] = {}
        for entity, write_id in stored.items():
            entry = self.entries.get(entity)
            if entry is not None and entry[0] == write_id:
                self.entries.move_to_end(entity)
                found[entity] = working_copy(entry[1])
        self.hits += len(found)
        self.misses += len(stored) - len(found)
        return found

    def remember(self, states: Mapping[str, EntityState], write_id: int) -> None:
        """The states a committed transaction wrote under ``write_id``; the least recently used beyond
        ``capacity`` are dropped."""
        if self.capacity == 0:
            return
        for entity, state in states.items():
            self.entries[entity] = (write_id, state)
            self.entries.move_to_end(entity)
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)


def working_copy(state: EntityState) -> EntityState:
    """A state ``observe`` may change without touching ``state``: it appends to and pops from the window list
    but never changes an observation, so the list is copied and the observations are shared."""
    return replace(state, window=list(state.window))
