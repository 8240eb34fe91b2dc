"""coreset-kcenter: blocked NTK columns, exact budget, validity, determinism, covering radius."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from cfbench.ntk import NTKConfig, ntk
from cfbench.plugins import load_sampler
from cfbench.sampling import SelectionData
from cfbench.subsets import UserSubset, validate_subset
from samplers._user_kernel import UserKernel
from samplers.coreset_kcenter import CoresetKCenter, k_center


@pytest.fixture(scope="module")
def dense_kernel(small_split) -> np.ndarray:
    x = jnp.asarray(small_split.train.toarray())
    return np.asarray(ntk(x, x, NTKConfig()), dtype=np.float64)


@pytest.fixture(scope="module")
def squared_distances(dense_kernel) -> np.ndarray:
    diag = np.diag(dense_kernel)
    return np.maximum(diag[:, None] + diag[None, :] - 2.0 * dense_kernel, 0.0)


def _covering_radius(d2: np.ndarray, centres: np.ndarray) -> float:
    return float(np.sqrt(d2[:, centres].min(axis=1).max()))


def test_blocked_columns_match_the_dense_ntk(small_split, dense_kernel):
    kernel = UserKernel.of(small_split.train, NTKConfig())
    users = np.array([0, 7, 300, 609])
    np.testing.assert_allclose(kernel.columns(users), dense_kernel[:, users], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(kernel.diagonal, np.diag(dense_kernel), rtol=1e-5)


@pytest.mark.parametrize("budget", [1, 12, 61, 610, 1000])
def test_exact_budget_and_validity(small_split, budget):
    data = SelectionData(small_split)
    subset = CoresetKCenter().select(data, budget, np.random.default_rng(0))
    assert isinstance(subset, UserSubset)
    assert subset.users.size == min(budget, data.n_users) == np.unique(subset.users).size
    validate_subset(subset, data.train, budget, "coreset-kcenter")


def test_same_seed_same_users_other_seed_other_start(small_split):
    data = SelectionData(small_split)
    a, b, c = (CoresetKCenter().select(data, 30, np.random.default_rng(s)).users for s in (0, 0, 1))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_smaller_covering_radius_than_random_users(small_split, squared_distances):
    data = SelectionData(small_split)
    budget = 30
    centres = CoresetKCenter().select(data, budget, np.random.default_rng(0)).users
    rng = np.random.default_rng(1)
    random_radii = [_covering_radius(squared_distances, rng.choice(data.n_users, budget, replace=False))
                    for _ in range(20)]
    assert _covering_radius(squared_distances, centres) < min(random_radii)


def test_each_new_centre_is_the_farthest_user(small_split, squared_distances):
    kernel = UserKernel.of(small_split.train, NTKConfig())
    order = k_center(kernel, 20, first=5)
    assert order[0] == 5
    for t in range(1, order.size):
        nearest = squared_distances[:, order[:t]].min(axis=1)
        assert nearest[order[t]] == pytest.approx(nearest.max(), rel=1e-4, abs=1e-6)


def test_registered_as_plugin():
    assert isinstance(load_sampler("coreset-kcenter:depth=2"), CoresetKCenter)
