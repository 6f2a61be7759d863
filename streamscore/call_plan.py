"""How a batch of tokenised texts is cut into ONNX Runtime calls.

A call pads every text to the longest one in it, and every padded token costs as much compute as a real
one, so the cut decides how much of the model's time is wasted. Sorting by length and filling calls up to a
token budget (plain length bucketing) still pads a batch of 54 headlines to 64 % real tokens: one call
holds lengths from 60 down to 15. More, shorter calls pad less but each call has a fixed cost (the ORT
dispatch, the thread pool's start and join, the Python around it).

:func:`plan_calls` chooses the cut that minimises ``padded tokens + call_cost_tokens × calls`` under the
per-call token budget, exactly, by dynamic programming over the texts sorted by length (an optimal cut of
that kind always consists of runs of neighbours in length order). On two cores, with a fixed cost of 64
tokens, the share of real tokens in batches of real headlines went from 66 % to 87 % at 64 per batch and
from 79 % to 93 % at 256 (`streamscore bench e2e`).

On CPU the scorer runs its calls single-threaded, one per core at once (:func:`spread_calls` orders them),
rather than one call at a time over every core: a kernel parallelised over two threads waits at each op for
its slower thread, so any other work on the machine (the worker's own event loop, the database driver)
stalls both; two independent calls lose only the time actually taken from them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

CallPlan = Literal["least-cost", "fill"]

CALL_COST_TOKENS = {"CPUExecutionProvider": 64, "CUDAExecutionProvider": 4096}
"""The fixed cost of one call, in padded tokens' worth of compute. Measured on CPU (MiniLM-L6 int8, two
threads: about 3 ms per call against about 19 000 padded tokens/s); on a GPU a kernel launch sequence costs
as much as thousands of tokens, so calls stay few and large there."""


def plan_calls(lengths: np.ndarray, max_tokens: int, call_cost_tokens: int) -> list[np.ndarray]:
    """Indices into ``lengths`` per call, longest texts first; each call's ``count × longest length`` stays
    within ``max_tokens`` (a text longer than the budget gets a call of its own), and the sum of padded
    tokens plus ``call_cost_tokens`` per call is the least possible."""
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(lengths)
    if n == 0:
        return []
    order = np.argsort(-lengths, kind="stable")
    width = np.maximum(lengths[order], 1)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    start_of = np.zeros(n + 1, dtype=np.int64)
    for start in range(n):
        # a call that starts at `start` is as wide as its first (longest) text
        fits = max(1, max_tokens // int(width[start]))
        ends = np.arange(start + 1, min(n, start + fits) + 1)
        cost = best[start] + (ends - start) * width[start] + call_cost_tokens
        better = cost < best[ends]
        best[ends[better]] = cost[better]
        start_of[ends[better]] = start
    calls: list[np.ndarray] = []
    end = n
    while end > 0:
        start = int(start_of[end])
        calls.append(order[start:end])
        end = start
    return calls[::-1]


def fill_calls(lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Plain length bucketing, kept as the benchmarks' reference: sort by length, fill each call up to the
    budget. Fewest calls, but a call's short texts are padded to its longest."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    calls: list[np.ndarray] = []
    start = 0
    while start < len(order):
        size = max(1, max_tokens // max(int(lengths[order[start]]), 1))
        calls.append(order[start : start + size])
        start += size
    return calls


def cut_into_calls(lengths: np.ndarray, plan: CallPlan, max_tokens: int, call_cost_tokens: int) -> list[np.ndarray]:
    """The calls for ``lengths`` by the named plan."""
    return fill_calls(lengths, max_tokens) if plan == "fill" else plan_calls(lengths, max_tokens, call_cost_tokens)


def spread_calls(lengths: np.ndarray, calls: list[np.ndarray], workers: int) -> list[np.ndarray]:
    """The calls reordered for ``workers`` single-threaded ONNX Runtime calls at once: largest padded cost
    first (a free worker takes the next call, so this is the longest-processing-time-first schedule), and,
    while there are fewer calls than workers, the call with the most texts cut in two (a batch of a few
    headlines would otherwise leave a core idle and take twice as long as one two-thread call)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    spread = [call for call in calls if len(call)]
    while 0 < len(spread) < workers:
        widest = max(range(len(spread)), key=lambda i: len(spread[i]))
        call = spread[widest]
        if len(call) < 2:
            break
        half = len(call) // 2
        spread[widest : widest + 1] = [call[:half], call[half:]]
    costs = [len(call) * int(lengths[call].max()) for call in spread]
    return [spread[i] for i in sorted(range(len(spread)), key=lambda i: -costs[i])]


def padded_tokens(lengths: np.ndarray, calls: list[np.ndarray]) -> int:
    """Tokens the calls feed the model, padding included (real tokens ÷ this is the padding efficiency)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    return int(sum(len(call) * int(lengths[call].max()) for call in calls))
