"""stratified-interactions: quotas (exact total, floor, ±1 of a common fraction), validity, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cfbench.plugins import load_sampler
from cfbench.sampling import SelectionData
from cfbench.subsets import validate_subset
from samplers.stratified_interactions import StratifiedInteractions, rank_within_users, user_quotas


def _kept_per_user(mask: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    return np.array([mask[a:b].sum() for a, b in zip(indptr[:-1], indptr[1:])])


def _common_fraction_exists(quotas: np.ndarray, counts: np.ndarray, lower: int) -> bool:
    """Is there an f with |q_u − f·n_u| < 1 for every user above the floor (intersection of intervals)?"""
    above = quotas > lower
    return bool(np.max((quotas[above] - 1) / counts[above]) < np.min((quotas[above] + 1) / counts[above]))


@pytest.mark.parametrize("budget", [1, 5, 61, 610])
def test_keeps_exactly_the_interaction_budget(small_split, budget):
    data = SelectionData(small_split)
    subset = StratifiedInteractions().select(data, budget, np.random.default_rng(0))
    assert int(subset.mask.sum()) == data.interaction_budget(budget)
    validate_subset(subset, data.train, budget, "stratified-interactions")


def test_every_user_keeps_the_same_fraction_within_one_interaction(small_split):
    data = SelectionData(small_split)
    budget = 61  # 10 % of users → ≈ 10 % of every user's interactions
    subset = StratifiedInteractions(min_per_user=0).select(data, budget, np.random.default_rng(0))
    kept = _kept_per_user(subset.mask, data.train.indptr)
    nominal = data.user_counts * data.interaction_budget(budget) / data.train.nnz
    assert np.all(np.abs(kept - nominal) < 1.0)


def test_every_user_keeps_one_when_affordable_and_the_rest_is_proportional(small_split):
    data = SelectionData(small_split)
    budget = 5  # 654 interactions for 610 users: the floor of one binds for most users
    subset = StratifiedInteractions().select(data, budget, np.random.default_rng(0))
    kept = _kept_per_user(subset.mask, data.train.indptr)
    assert kept.min() >= 1
    assert _common_fraction_exists(kept, data.user_counts, lower=1)


def test_same_seed_same_subset_other_seed_other_subset(small_split):
    data = SelectionData(small_split)
    a, b, c = (StratifiedInteractions().select(data, 61, np.random.default_rng(s)).mask for s in (1, 1, 2))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@settings(max_examples=200, deadline=None)
@given(counts=st.lists(st.integers(1, 60), min_size=1, max_size=40), share=st.floats(0.0, 1.0),
       floor=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_quotas_sum_to_total_respect_floor_caps_and_a_common_fraction(counts, share, floor, seed):
    counts = np.array(counts)
    total = int(round(share * counts.sum()))
    quotas = user_quotas(counts, total, floor, np.random.default_rng(seed))
    assert quotas.sum() == total
    assert np.all((quotas >= 0) & (quotas <= counts))
    lowest = np.minimum(counts, floor)
    if lowest.sum() <= total:  # the floor is affordable: every user gets it
        assert np.all(quotas >= lowest)
        if np.any(quotas > lowest):
            assert _common_fraction_exists(quotas, counts, lower=floor)
    if floor == 0:
        assert np.all(np.abs(quotas - counts * total / counts.sum()) < 1.0)


def test_rank_within_users_sorts_each_row_by_the_keys():
    indptr = np.array([0, 3, 3, 5])
    key = np.array([0.5, 0.1, 0.9, 0.7, 0.2])
    assert rank_within_users(indptr, key).tolist() == [1, 0, 2, 1, 0]
    assert rank_within_users(indptr, -key).tolist() == [1, 2, 0, 0, 1]


def test_registered_as_plugin():
    assert load_sampler("stratified-interactions:min_per_user=0").config.min_per_user == 0
