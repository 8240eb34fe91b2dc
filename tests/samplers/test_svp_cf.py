"""svp-cf: proxy training (loss, exact negatives), scores, budgets, validity, determinism, hard-data preference."""

from __future__ import annotations

import collections

import jax
import numpy as np
import pytest
import scipy.sparse as sp

from cfbench.metrics import inverse_propensity
from cfbench.plugins import load_sampler
from cfbench.sampling import SelectionData
from cfbench.splits import Split, reference_split
from cfbench.subsets import InteractionSubset, UserSubset, validate_subset
from samplers.svp_cf import (SVPCF, SVPConfig, _device_data, _sample_negatives, _search_steps, _Static,
                             forgetting_scores, train_proxy)

FAST = dict(epochs=3)  # enough to exercise the sampler; behaviour is tested on the toy below


@pytest.fixture(scope="module")
def small_proxy(small_split):
    return train_proxy(small_split.train, SVPConfig(epochs=5), seed=0)


def test_proxy_bpr_loss_decreases(small_proxy):
    loss = small_proxy.epoch_loss
    assert loss.shape == (5,) and np.all(np.isfinite(loss))
    assert loss[-1] < loss[0]
    assert loss[-1] < np.log(2.0)  # better than a constant scorer


def test_forgetting_scores_are_frequencies_per_interaction(small_split, small_proxy):
    forget = small_proxy.forget
    assert forget.shape == (small_split.train.nnz,)
    assert np.all((forget >= 0) & (forget <= 1))
    assert np.allclose(forget * 5, np.round(forget * 5))  # counts over 5 epochs


def test_same_seed_same_scores_other_seed_other_scores(small_split, small_proxy):
    again = train_proxy(small_split.train, SVPConfig(epochs=5), seed=0)
    other = train_proxy(small_split.train, SVPConfig(epochs=5), seed=1)
    assert np.array_equal(small_proxy.forget, again.forget)
    assert not np.array_equal(small_proxy.forget, other.forget)


def test_negatives_are_uniform_over_the_users_non_interacted_items(small_split):
    train = small_split.train
    data = _device_data(train)
    static = _Static("bias", train.shape[1], _search_steps(train), 1024, 0.0, 0.0, 0.0)
    heavy = int(np.argmax(np.diff(train.indptr)))
    draws = 200_000
    neg = np.asarray(_sample_negatives(jax.random.key(0), jax.numpy.full(draws, heavy, jax.numpy.int32), data,
                                       static))
    complement = np.setdiff1d(np.arange(train.shape[1]), train[heavy].indices)
    assert set(np.unique(neg)) == set(complement.tolist())  # every non-positive item, no positive
    freq = np.bincount(neg, minlength=train.shape[1])[complement]
    expected = draws / complement.size
    assert abs(freq.mean() - expected) < 1e-9 and freq.std() < 2 * np.sqrt(expected)  # ≈ Poisson spread
    every_row = np.asarray(_sample_negatives(jax.random.key(1), data.users, data, static))
    assert not np.asarray(train[np.asarray(data.users), every_row]).any()


@pytest.mark.parametrize("level,propensity", [("interaction", False), ("interaction", True), ("user", False),
                                              ("user", True)])
def test_budget_and_validity(small_split, level, propensity):
    data = SelectionData(small_split)
    budget = 61
    subset = SVPCF(level=level, propensity=propensity, **FAST).select(data, budget, np.random.default_rng(0))
    validate_subset(subset, data.train, budget, "svp-cf")
    if level == "user":
        assert isinstance(subset, UserSubset) and subset.users.size == budget
    else:
        assert isinstance(subset, InteractionSubset) and subset.mask.sum() == data.interaction_budget(budget)


def test_select_is_deterministic_for_a_seed_and_independent_of_the_generator(small_data, small_split):
    data = SelectionData(small_split)
    sampler = SVPCF(proxy="bias", level="interaction", **FAST)
    a, b = (sampler.select(data, 61, np.random.default_rng(s)).mask for s in (3, 4))
    assert np.array_equal(a, b)  # the proxy and the ties follow the split's seed, not the per-budget generator
    other = SelectionData(reference_split(small_data, seed=1))
    c = sampler.select(other, 61, np.random.default_rng(3)).mask
    assert c.shape != a.shape or not np.array_equal(a, c)


@pytest.mark.parametrize("level", ["user", "interaction"])
def test_subsets_are_nested_across_budgets_and_the_proxy_is_trained_once(small_split, level, monkeypatch):
    import samplers.svp_cf as svp

    monkeypatch.setattr(svp, "_proxy_cache", collections.OrderedDict())
    calls = []
    real = svp.train_proxy
    monkeypatch.setattr(svp, "train_proxy", lambda *a, **k: calls.append(1) or real(*a, **k))
    data = SelectionData(small_split)
    sampler = SVPCF(proxy="bias", level=level, **FAST)
    kept = []
    for budget in (10, 20, 50, 100):
        subset = sampler.select(data, budget, np.random.default_rng(budget))
        kept.append(set(subset.users.tolist()) if level == "user" else set(np.flatnonzero(subset.mask).tolist()))
        assert sampler.diagnostics()["proxy_cached"] == (budget != 10)
    assert len(calls) == 1
    assert all(small <= large for small, large in zip(kept, kept[1:]))
    assert sampler.diagnostics()["reused_seconds"] == sampler.diagnostics()["proxy_seconds"] > 0
    SVPCF(proxy="bias", level="user" if level == "interaction" else "interaction", **FAST).select(
        data, 10, np.random.default_rng(0))
    assert len(calls) == 1  # level and propensity do not change the proxy: shared
    SVPCF(proxy="bias", level=level, **{**FAST, "epochs": FAST["epochs"] + 1}).select(
        data, 10, np.random.default_rng(0))
    assert len(calls) == 2  # other proxy settings: trained anew


def test_propensity_weighting_follows_the_reference_formula():
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 1], [1, 0, 0, 0]], dtype=np.float32))
    forget = np.array([0.2, 0.4, 0.0, 0.6, 1.0, 0.8])
    n = train.nnz
    w_user = inverse_propensity(np.array([2, 3, 1]), n)
    w_item = inverse_propensity(np.array([3, 1, 1, 1]), n)
    users, items = np.array([0, 0, 1, 1, 1, 2]), train.indices
    assert np.allclose(forgetting_scores(forget, train, "interaction", False), forget)
    assert np.allclose(forgetting_scores(forget, train, "interaction", True),
                       forget * np.maximum(w_user[users], w_item[items]))
    means = np.array([0.3, 1.6 / 3, 0.8])
    assert np.allclose(forgetting_scores(forget, train, "user", False), means)
    assert np.allclose(forgetting_scores(forget, train, "user", True), means * w_user)


def _easy_user_split(n_users: int = 30, n_items: int = 40, n_popular: int = 10, seed: int = 0) -> Split:
    """Every user likes 5 popular and 5 tail items, except the last, who likes 5 popular items only."""
    rng = np.random.default_rng(seed)
    rows = [np.concatenate([rng.choice(n_popular, 5, replace=False),
                            n_popular + rng.choice(n_items - n_popular, 5, replace=False)])
            for _ in range(n_users - 1)]
    rows.append(rng.choice(n_popular, 5, replace=False))
    train = sp.csr_matrix((np.ones(sum(map(len, rows)), np.float32),
                           (np.repeat(np.arange(n_users), [len(r) for r in rows]), np.concatenate(rows))),
                          shape=(n_users, n_items))
    train.sort_indices()
    empty = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    return Split("easy-user", seed, train, empty, empty, np.arange(n_users), np.arange(n_items))


@pytest.mark.parametrize("proxy", ["bias", "mf"])
def test_user_level_drops_the_user_whose_interactions_are_easy(proxy):
    split = _easy_user_split()
    data = SelectionData(split)
    easy = data.n_users - 1
    sampler = SVPCF(proxy=proxy, level="user", epochs=30, batch_size=32)
    kept = sampler.select(data, data.n_users - 1, np.random.default_rng(0)).users
    assert easy not in kept
    # the same preference at interaction level: the easy user's interactions go before the median one's
    mask = SVPCF(proxy=proxy, level="interaction", epochs=30, batch_size=32).select(
        data, data.n_users // 2, np.random.default_rng(0)).mask
    start = split.train.indptr[easy]
    assert mask[start:].mean() < mask[:start].mean()


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="proxy must be one of bias, mf"):
        SVPConfig(proxy="neumf")
    with pytest.raises(ValueError, match="level must be one of interaction, user"):
        SVPConfig(level="item")


def test_registered_as_plugin():
    sampler = load_sampler("svp-cf:proxy=bias,level=interaction,propensity=true")
    assert isinstance(sampler, SVPCF)
    assert sampler.config == SVPConfig(proxy="bias", level="interaction", propensity=True)
