"""temporal: each user keeps their latest interactions; exact budget; clear error without timestamps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from cfbench.plugins import load_sampler
from cfbench.sampling import SelectionData
from cfbench.subsets import validate_subset
from samplers.stratified_interactions import StratifiedInteractions
from samplers.temporal import Temporal
from tests.conftest import toy_split


@pytest.mark.parametrize("budget", [1, 5, 61, 610])
def test_keeps_exactly_the_interaction_budget(small_split, budget):
    data = SelectionData(small_split)
    subset = Temporal().select(data, budget, np.random.default_rng(0))
    assert int(subset.mask.sum()) == data.interaction_budget(budget)
    validate_subset(subset, data.train, budget, "temporal")


def test_each_user_keeps_exactly_their_latest_interactions(small_split):
    data = SelectionData(small_split)
    mask = Temporal().select(data, 61, np.random.default_rng(0)).mask
    times = data.train_timestamps.data
    for u in range(data.n_users):
        a, b = data.train.indptr[u], data.train.indptr[u + 1]
        kept, removed = times[a:b][mask[a:b]], times[a:b][~mask[a:b]]
        assert kept.size >= 1
        if removed.size:
            assert kept.min() >= removed.max()


def test_same_quotas_as_stratified(small_split):
    data = SelectionData(small_split)
    counts = [np.add.reduceat(s.select(data, 61, np.random.default_rng(0)).mask, data.train.indptr[:-1])
              for s in (Temporal(), StratifiedInteractions())]
    assert np.abs(counts[0] - counts[1]).max() <= 1  # equal up to the random tie-break of the rounding


def test_deterministic_and_ties_broken_at_random():
    split = toy_split(n_users=20, n_items=30, seed=1)
    same_time = sp.csr_matrix((np.full(split.train.nnz, 7), split.train.indices, split.train.indptr),
                              shape=split.train.shape)
    data = SelectionData(dataclasses.replace(split, train_timestamps=same_time))
    a, b, c = (Temporal().select(data, 6, np.random.default_rng(s)).mask for s in (0, 0, 1))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_dataset_without_timestamps_is_a_clear_error(small_split):
    data = SelectionData(dataclasses.replace(small_split, train_timestamps=None))
    with pytest.raises(ValueError, match=r"'temporal' needs interaction timestamps.*'ml-latest-small' has none"):
        Temporal().select(data, 10, np.random.default_rng(0))


def test_misaligned_timestamps_are_an_error(small_split):
    shifted = small_split.train_timestamps.copy()
    shifted.indices = np.roll(shifted.indices, 1)
    data = SelectionData(dataclasses.replace(small_split, train_timestamps=shifted))
    with pytest.raises(ValueError, match="sparsity"):
        Temporal().select(data, 10, np.random.default_rng(0))


def test_registered_as_plugin():
    assert isinstance(load_sampler("temporal"), Temporal)
