"""coreset-herding: exact budget, validity, determinism, mean embedding closer than random users'."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from cfbench.ntk import NTKConfig, ntk
from cfbench.plugins import load_sampler
from cfbench.sampling import SelectionData
from cfbench.subsets import UserSubset, validate_subset
from samplers._user_kernel import UserKernel, mean_embedding
from samplers.coreset_herding import CoresetHerding


@pytest.fixture(scope="module")
def dense_kernel(small_split) -> np.ndarray:
    x = jnp.asarray(small_split.train.toarray())
    return np.asarray(ntk(x, x, NTKConfig()), dtype=np.float64)


def _mmd2(k: np.ndarray, chosen: np.ndarray) -> float:
    """‖mean φ(chosen) − mean φ(all)‖² from the full kernel matrix."""
    return float(k[np.ix_(chosen, chosen)].mean() - 2.0 * k[:, chosen].mean() + k.mean())


def test_blocked_mean_embedding_matches_the_dense_one(small_split, dense_kernel):
    kernel = UserKernel.of(small_split.train, NTKConfig())
    mean = mean_embedding(kernel, np.arange(kernel.n_users), block_size=100)
    np.testing.assert_allclose(mean, dense_kernel.mean(axis=1), rtol=1e-5)


@pytest.mark.parametrize("budget", [1, 12, 61, 610, 1000])
def test_exact_budget_and_validity(small_split, budget):
    data = SelectionData(small_split)
    subset = CoresetHerding().select(data, budget, np.random.default_rng(0))
    assert isinstance(subset, UserSubset)
    assert subset.users.size == min(budget, data.n_users) == np.unique(subset.users).size
    validate_subset(subset, data.train, budget, "coreset-herding")


def test_deterministic_and_seeded_when_the_mean_is_estimated(small_split):
    data = SelectionData(small_split)
    exact = [CoresetHerding().select(data, 30, np.random.default_rng(s)).users for s in (0, 1)]
    assert np.array_equal(exact[0], exact[1])  # nothing random when μ uses every user
    estimated = [CoresetHerding(mean_users=50).select(data, 30, np.random.default_rng(s)).users for s in (0, 0, 1)]
    assert np.array_equal(estimated[0], estimated[1])
    assert not np.array_equal(estimated[0], estimated[2])


@pytest.mark.parametrize("budget", [10, 30])
def test_mean_embedding_closer_to_the_full_mean_than_random_users(small_split, dense_kernel, budget):
    data = SelectionData(small_split)
    chosen = CoresetHerding().select(data, budget, np.random.default_rng(0)).users
    rng = np.random.default_rng(1)
    random_mmd = [_mmd2(dense_kernel, rng.choice(data.n_users, budget, replace=False)) for _ in range(20)]
    assert _mmd2(dense_kernel, chosen) < min(random_mmd)


def test_registered_as_plugin():
    assert load_sampler("coreset-herding:mean_users=100").config.mean_users == 100
