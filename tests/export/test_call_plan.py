"""The cut of a batch into ONNX Runtime calls: every text once, budgets kept, least padding plus call cost."""

from __future__ import annotations

from functools import cache
from typing import get_args

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamscore.call_plan import CallPlan, fill_calls, padded_tokens, plan_calls, spread_calls
from streamscore.settings import Settings

lengths_st = st.lists(st.integers(min_value=1, max_value=80), min_size=0, max_size=40)


def cost(lengths: np.ndarray, calls: list[np.ndarray], call_cost: int) -> int:
    return padded_tokens(lengths, calls) + call_cost * len(calls)


def brute_force_cost(lengths: list[int], max_tokens: int, call_cost: int) -> int:
    """The best cut into runs of neighbours in length order, by exhaustive recursion (small inputs only)."""
    ordered = sorted(lengths, reverse=True)

    @cache
    def best(start: int) -> int:
        if start == len(ordered):
            return 0
        fits = max(1, max_tokens // ordered[start])
        return min(
            (end - start) * ordered[start] + call_cost + best(end)
            for end in range(start + 1, min(len(ordered), start + fits) + 1)
        )

    return best(0)


@settings(max_examples=200, deadline=None)
@given(lengths_st, st.integers(min_value=1, max_value=600), st.integers(min_value=0, max_value=200))
def test_every_text_in_exactly_one_call_within_budget(lengths: list[int], max_tokens: int, call_cost: int) -> None:
    arr = np.array(lengths, dtype=np.int64)
    for calls in (plan_calls(arr, max_tokens, call_cost), fill_calls(arr, max_tokens)):
        assert sorted(int(i) for call in calls for i in call) == list(range(len(lengths)))
        for call in calls:
            assert len(call) == 1 or len(call) * int(arr[call].max()) <= max_tokens


@settings(max_examples=200, deadline=None)
@given(
    lengths_st.filter(lambda x: len(x) <= 12),
    st.integers(min_value=1, max_value=300),
    st.integers(min_value=0, max_value=200),
)
def test_plan_is_optimal_and_never_worse_than_bucketing(lengths: list[int], max_tokens: int, call_cost: int) -> None:
    arr = np.array(lengths, dtype=np.int64)
    planned = cost(arr, plan_calls(arr, max_tokens, call_cost), call_cost)
    assert planned == brute_force_cost(lengths, max_tokens, call_cost)
    assert planned <= cost(arr, fill_calls(arr, max_tokens), call_cost)


def test_mixed_lengths_get_their_own_calls_and_equal_ones_share() -> None:
    lengths = np.array([60, 12, 58, 12, 12, 61])
    calls = plan_calls(lengths, max_tokens=2048, call_cost_tokens=16)
    assert [sorted(c.tolist()) for c in calls] == [[0, 2, 5], [1, 3, 4]]
    assert padded_tokens(lengths, calls) == 3 * 61 + 3 * 12
    # with a prohibitive call cost everything shares one call, padded to the longest text
    assert len(plan_calls(lengths, 2048, 10_000)) == 1
    assert plan_calls(np.array([], dtype=np.int64), 2048, 64) == []


@settings(max_examples=200, deadline=None)
@given(lengths_st, st.integers(min_value=1, max_value=600), st.integers(min_value=1, max_value=4))
def test_spread_calls_keep_every_text_once_and_give_each_worker_a_call(
    lengths: list[int], max_tokens: int, workers: int
) -> None:
    arr = np.array(lengths, dtype=np.int64)
    calls = plan_calls(arr, max_tokens, 64)
    spread = spread_calls(arr, calls, workers)
    assert sorted(int(i) for call in spread for i in call) == list(range(len(lengths)))
    assert len(spread) == max(len(calls), min(workers, len(lengths)))
    costs = [len(call) * int(arr[call].max()) for call in spread]
    assert costs == sorted(costs, reverse=True)  # the largest first: a free worker takes the next one
    assert padded_tokens(arr, spread) <= padded_tokens(arr, calls)  # cutting a call never pads more


def test_a_single_call_is_cut_in_two_longest_texts_together() -> None:
    lengths = np.array([10, 40, 12, 38, 11, 39])
    calls = plan_calls(lengths, max_tokens=2048, call_cost_tokens=10_000)
    assert len(calls) == 1
    spread = spread_calls(lengths, calls, workers=2)
    assert [sorted(c.tolist()) for c in spread] == [[1, 3, 5], [0, 2, 4]]
    assert spread_calls(lengths, calls, workers=1) == calls
    assert spread_calls(np.array([7]), [np.array([0])], workers=2)[0].tolist() == [0]


def test_the_setting_offers_exactly_the_plans_the_scorer_knows() -> None:
    assert get_args(Settings.model_fields["inference_call_plan"].annotation) == get_args(CallPlan)
