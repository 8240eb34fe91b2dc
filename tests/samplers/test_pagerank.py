"""pagerank: matches a direct linear solve, exact budget, validity, determinism, degree limit, top scores kept."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from cfbench.plugins import load_sampler
from cfbench.sampling import SelectionData
from cfbench.splits import Split
from cfbench.subsets import UserSubset, validate_subset
from samplers.pagerank import PageRank, bipartite_pagerank
from tests.conftest import toy_split


def _dense_pagerank(x: np.ndarray, damping: float) -> np.ndarray:
    """Solve p = α (M p + (dangling mass)/n) + (1 − α)/n directly, M = A D⁻¹ (dangling columns → 1/n)."""
    u, i = x.shape
    n = u + i
    a = np.zeros((n, n))
    a[:u, u:], a[u:, :u] = x > 0, (x > 0).T
    deg = a.sum(axis=0)
    m = np.where(deg > 0, a / np.where(deg > 0, deg, 1.0), 1.0 / n)
    return np.linalg.solve(np.eye(n) - damping * m, np.full(n, (1.0 - damping) / n))


def test_power_iteration_matches_a_direct_solve():
    split = toy_split(n_users=15, n_items=25, seed=2)
    x = split.train.toarray()
    x[:, -1] = 0  # an item nobody trains on: a dangling node
    p_u, p_i = bipartite_pagerank(sp.csr_matrix(x), damping=0.85, tol=1e-12, max_iter=10_000)
    expected = _dense_pagerank(x, 0.85)
    np.testing.assert_allclose(np.concatenate([p_u, p_i]), expected, rtol=1e-8, atol=1e-12)
    assert np.concatenate([p_u, p_i]).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("budget", [1, 61, 610, 1000])
def test_exact_budget_and_validity(small_split, budget):
    data = SelectionData(small_split)
    subset = PageRank().select(data, budget, np.random.default_rng(0))
    assert isinstance(subset, UserSubset) and subset.users.size == min(budget, data.n_users)
    validate_subset(subset, data.train, budget, "pagerank")


def test_deterministic_and_ties_broken_at_random():
    # 8 users with identical histories: all tie, so the seed decides
    train = sp.csr_matrix(np.tile(np.eye(1, 5, 0) + np.eye(1, 5, 3), (8, 1)).astype(np.float32))
    empty = sp.csr_matrix(train.shape, dtype=np.float32)
    data = SelectionData(Split("ties", 0, train, empty, empty, np.arange(8), np.arange(5)))
    picks = [PageRank().select(data, 3, np.random.default_rng(s)).users for s in range(6)]
    assert np.array_equal(picks[0], PageRank().select(data, 3, np.random.default_rng(0)).users)
    assert len({tuple(p) for p in picks}) > 1


def test_tends_to_the_degree_distribution_as_damping_tends_to_one():
    # connected graph (everyone likes item 0), no dangling item: the walk's stationary law is d_v / 2|E|
    rng = np.random.default_rng(0)
    x = (rng.random((12, 15)) < np.linspace(0.1, 0.9, 12)[:, None]).astype(np.float32)
    x[:, 0] = 1
    x = sp.csr_matrix(x[:, x.sum(axis=0) > 0])
    degrees = np.concatenate([np.diff(x.indptr), np.bincount(x.indices)])
    stationary = degrees / degrees.sum()
    errors = [np.abs(np.concatenate(bipartite_pagerank(x, damping, 1e-13, 100_000)) / stationary - 1).max()
              for damping in (0.5, 0.85, 0.99)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.05


def test_keeps_the_users_with_the_highest_pagerank(small_split):
    data = SelectionData(small_split)
    scores, _ = bipartite_pagerank(data.train, 0.85, 1e-6, 1000)
    kept = PageRank().select(data, 61, np.random.default_rng(0)).users
    assert scores[kept].min() >= np.delete(scores, kept).max()


def test_registered_as_plugin():
    assert load_sampler("pagerank:damping=0.5").config.damping == 0.5
