"""random-interactions: exact interaction budget, validity, determinism, uniform inclusion."""

from __future__ import annotations

import numpy as np
import pytest

from cfbench.plugins import load_sampler
from cfbench.sampling import SelectionData
from cfbench.subsets import InteractionSubset, subset_size, support_matrix, validate_subset
from samplers.random_interactions import RandomInteractions
from tests.conftest import toy_split


@pytest.mark.parametrize("budget", [1, 61, 609, 610])
def test_keeps_exactly_the_interaction_budget(small_split, budget):
    data = SelectionData(small_split)
    subset = RandomInteractions().select(data, budget, np.random.default_rng(0))
    assert isinstance(subset, InteractionSubset)
    assert int(subset.mask.sum()) == data.interaction_budget(budget)
    validate_subset(subset, data.train, budget, "random-interactions")


def test_same_seed_same_subset_other_seed_other_subset(small_split):
    data = SelectionData(small_split)
    a, b, c = (RandomInteractions().select(data, 61, np.random.default_rng(s)).mask for s in (5, 5, 6))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_every_interaction_is_equally_likely():
    data = SelectionData(toy_split(n_users=10, n_items=12, seed=3))
    n, budget, draws = data.train.nnz, 4, 3000
    rng = np.random.default_rng(0)
    freq = np.mean([RandomInteractions().select(data, budget, rng).mask for _ in range(draws)], axis=0)
    p = data.interaction_budget(budget) / n
    assert np.abs(freq - p).max() < 5 * np.sqrt(p * (1 - p) / draws)  # 5 standard errors


def test_support_matrix_keeps_the_subset_and_leaves_train_intact(small_split):
    data = SelectionData(small_split)
    train = data.train
    before = (train.data.copy(), train.indices.copy(), train.indptr.copy())
    subset = RandomInteractions().select(data, 61, np.random.default_rng(0))
    support = support_matrix(subset, train)
    assert support.nnz == subset_size(subset, train)["n_interactions"] == subset.mask.sum()
    assert all(np.array_equal(a, b) for a, b in zip(before, (train.data, train.indices, train.indptr)))


def test_registered_as_plugin():
    assert isinstance(load_sampler("random-interactions"), RandomInteractions)
