"""A started batch of text-model calls (:class:`streamscore.scorer.TextJob`): when it makes room for the next
batch, and that results come back in input order whatever order the calls end in."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from streamscore.scorer import TextJob


def job_of(calls: list[list[int]], queued_ahead: int) -> TextJob:
    size = sum(len(c) for c in calls)
    return TextJob(
        size,
        np.ones(size, dtype=np.int64),
        np.zeros(size, dtype=bool),
        [np.array(c) for c in calls],
        ["out"],
        queued_ahead,
    )


def test_room_is_made_once_no_more_than_queued_ahead_calls_wait_for_a_thread() -> None:
    """One pool thread, four calls, room at two waiting: not while the first call runs (three wait), but as
    soon as the second one is taken."""
    gates = [threading.Event() for _ in range(4)]
    job = job_of([[0], [1], [2], [3]], queued_ahead=2)

    def run(feed: np.ndarray, gate: np.ndarray) -> list[np.ndarray]:
        gates[int(gate[0])].wait(10)
        return [feed.astype(np.float32)]

    with ThreadPoolExecutor(1) as pool:
        for i, call in enumerate(job.calls):
            job.pending.append(pool.submit(job.run_call, run, call * 10, np.array([i])))
        assert not job.wait_for_room(0.2)  # call 0 runs, calls 1-3 wait
        gates[0].set()
        assert job.wait_for_room(5)  # call 1 was taken: two wait
        for gate in gates[1:]:
            gate.set()
        scores = job.result()
    assert scores.outputs["out"].tolist() == [0.0, 10.0, 20.0, 30.0]


def test_results_are_in_input_order_whatever_order_the_calls_end_in() -> None:
    calls = [[3, 0], [2], [1, 4]]
    job = job_of(calls, queued_ahead=3)
    assert job.wait_for_room(0)  # three calls, room for three: the next batch may start at once
    ends = [threading.Event() for _ in calls]

    finished: list[int] = []

    def run(positions: np.ndarray, index: np.ndarray) -> list[np.ndarray]:
        i = int(index[0])
        ends[i].wait(10)
        finished.append(i)
        if i > 0:
            ends[i - 1].set()  # the last call ends first
        return [positions.astype(np.float32)[:, None] * 2]

    with ThreadPoolExecutor(3) as pool:
        for i, call in enumerate(job.calls):
            job.pending.append(pool.submit(job.run_call, run, call, np.array([i])))
        ends[-1].set()
        scores = job.result()
    assert finished == [2, 1, 0]
    assert scores.outputs["out"][:, 0].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_a_failed_call_raises_from_result() -> None:
    job = job_of([[0], [1]], queued_ahead=2)

    def run(*_: np.ndarray) -> list[np.ndarray]:
        raise RuntimeError("ORT said no")

    with ThreadPoolExecutor(1) as pool:
        for call in job.calls:
            job.pending.append(pool.submit(job.run_call, run, call))
        with pytest.raises(RuntimeError, match="ORT said no"):
            job.result()
