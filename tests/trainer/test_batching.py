"""Length-grouped batching and dynamic padding."""

from __future__ import annotations

import numpy as np

from trainer.text_batches import collate, length_grouped_batches, sequential_batches


def test_every_index_lands_in_exactly_one_batch() -> None:
    lengths = np.random.default_rng(0).integers(1, 128, size=1003)
    batches = length_grouped_batches(lengths, 32, np.random.default_rng(1), group=4)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1003))
    assert sum(len(b) < 32 for b in batches) <= -(-1003 // (32 * 4))  # at most one short batch per group


def test_grouping_cuts_padding() -> None:
    lengths = np.random.default_rng(0).integers(5, 128, size=3200)
    grouped = length_grouped_batches(lengths, 32, np.random.default_rng(2))
    random = np.array_split(np.random.default_rng(2).permutation(3200), 100)

    def padded(batches):
        return sum(len(b) * lengths[b].max() for b in batches)

    assert padded(grouped) < 0.7 * padded(random)


def test_sequential_batches_cover_all_in_length_order() -> None:
    lengths = np.array([3, 9, 1, 7])
    batches = sequential_batches(lengths, 3)
    assert [b.tolist() for b in batches] == [[1, 3, 0], [2]]


def test_collate_pads_to_longest_and_masks() -> None:
    ids, mask = collate([[101, 7, 102], [101, 102]], pad_id=0)
    assert ids.tolist() == [[101, 7, 102], [101, 102, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]
