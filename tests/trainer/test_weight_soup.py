"""The uniform model soup: the mean of fine-tuned copies' weights, and what it refuses to average."""

from __future__ import annotations

import pytest
import torch

from trainer.weight_soup import average_weights


def test_the_soup_is_the_element_wise_mean_in_each_tensors_own_dtype() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "h": torch.tensor([1.0], dtype=torch.bfloat16), "n": torch.tensor([3])}
    b = {"w": torch.tensor([3.0, 6.0]), "h": torch.tensor([2.0], dtype=torch.bfloat16), "n": torch.tensor([3])}
    soup = average_weights([a, b])
    assert torch.equal(soup["w"], torch.tensor([2.0, 4.0]))
    assert soup["h"].dtype == torch.bfloat16 and soup["h"].item() == 1.5
    assert torch.equal(soup["n"], torch.tensor([3]))
    assert average_weights([a])["w"] is not a["w"] and torch.equal(average_weights([a])["w"], a["w"])


def test_a_soup_of_one_models_copies_loads_back_into_that_model() -> None:
    torch.manual_seed(0)
    first, second = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    soup = average_weights([first.state_dict(), second.state_dict()])
    merged = torch.nn.Linear(4, 3)
    merged.load_state_dict(soup)
    x = torch.randn(5, 4)
    # a linear layer's output is linear in its weights: the soup's output is the mean of the copies' outputs
    assert torch.allclose(merged(x), (first(x) + second(x)) / 2, atol=1e-6)


def test_states_of_different_models_or_disagreeing_counters_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        average_weights([])
    with pytest.raises(ValueError, match="not of the same model"):
        average_weights([{"w": torch.zeros(2)}, {"v": torch.zeros(2)}])
    with pytest.raises(ValueError, match="shapes differ"):
        average_weights([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}])
    with pytest.raises(ValueError, match="non-float"):
        average_weights([{"n": torch.tensor([1])}, {"n": torch.tensor([2])}])
