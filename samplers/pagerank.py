"""``pagerank``: the users most central in the user–item bipartite train graph (PageRank).

The graph has U + I nodes and an undirected edge per train interaction, adjacency
A = [[0, X], [Xᵀ, 0]] with degrees d. PageRank with damping α solves

    p = α (A D⁻¹ p + (Σ_{dangling j} p_j) / n · 1) + (1 − α) / n · 1,   n = U + I,

(dangling nodes, items nobody trains on, spread their mass uniformly), by power iteration until
‖p_{t+1} − p_t‖₁ < ``tol``. The b users with the largest p_u are kept, ties at random.

If the iteration has not converged after ``max_iter`` steps, :class:`PageRankNotConverged` is
raised: an unconverged vector is not PageRank (after few steps it is close to the degree ranking),
so returning it would silently report another algorithm's output. The iterations used and the
final L1 change are recorded in :meth:`PageRank.diagnostics`.

The reference (sampling_cf ``pagerank``, networkit, tol 1e-6) walks all nodes — users and items —
from the lowest score and removes their edges, an interaction-level subset; this sampler keeps
whole users, as the budget here is a number of users.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from cfbench.memory import Footprint, UnitShape, interaction_sampler_footprint
from cfbench.models.base import NumericalError
from cfbench.numerics import top_k_random_ties
from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import UserSubset

__all__ = ["PageRank", "PageRankConfig", "PageRankNotConverged", "bipartite_pagerank", "power_iteration"]


class PageRankNotConverged(NumericalError):
    """The power iteration reached ``max_iter`` with an L1 change still ≥ ``tol`` (or not finite)."""

    def __init__(self, iterations: int, change: float, tol: float) -> None:
        super().__init__(f"pagerank did not converge in {iterations} iteration{'s' * (iterations != 1)}: "
                         f"L1 change {change:.3g} ≥ tol {tol:g}; raise max_iter or tol")
        self.iterations, self.change, self.tol = iterations, change, tol


@dataclasses.dataclass(frozen=True)
class PageRankConfig:
    damping: float = 0.85
    tol: float = 1e-6  # L1 change between iterations that stops the power iteration
    max_iter: int = 1000

    def __post_init__(self) -> None:
        if not 0.0 <= self.damping < 1.0:
            raise ValueError(f"damping must be in [0, 1), got {self.damping}")
        if self.tol <= 0 or self.max_iter < 1:
            raise ValueError("tol must be > 0 and max_iter ≥ 1")


def bipartite_pagerank(train: sp.csr_matrix, damping: float, tol: float,
                       max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """PageRank (p_users, p_items) of the bipartite graph of ``train``'s non-zeros (weights ignored).

    Raises :class:`PageRankNotConverged` if the L1 change is still ≥ ``tol`` after ``max_iter`` iterations.
    """
    p_u, p_i, _, _ = power_iteration(train, damping, tol, max_iter)
    return p_u, p_i


def power_iteration(train: sp.csr_matrix, damping: float, tol: float,
                    max_iter: int) -> tuple[np.ndarray, np.ndarray, int, float]:
    """``(p_users, p_items, iterations, final L1 change)``; raises :class:`PageRankNotConverged` as above."""
    x = sp.csr_matrix((np.ones(train.nnz), train.indices, train.indptr), shape=train.shape)
    n_users, n_items = x.shape
    n = n_users + n_items
    deg_u, deg_i = np.diff(x.indptr).astype(np.float64), np.bincount(x.indices, minlength=n_items).astype(np.float64)
    inv_u, inv_i = np.divide(1.0, deg_u, where=deg_u > 0, out=np.zeros(n_users)), \
        np.divide(1.0, deg_i, where=deg_i > 0, out=np.zeros(n_items))
    xt = x.T.tocsr()
    p_u, p_i = np.full(n_users, 1.0 / n), np.full(n_items, 1.0 / n)
    change = float("inf")
    for iteration in range(1, max_iter + 1):
        dangling = p_u[deg_u == 0].sum() + p_i[deg_i == 0].sum()
        base = (1.0 - damping) / n + damping * dangling / n
        new_u = base + damping * (x @ (p_i * inv_i))
        new_i = base + damping * (xt @ (p_u * inv_u))
        change = float(np.abs(new_u - p_u).sum() + np.abs(new_i - p_i).sum())
        p_u, p_i = new_u, new_i
        if change < tol:  # False for a NaN change: a non-finite iteration never counts as converged
            return p_u, p_i, iteration, change
    raise PageRankNotConverged(max_iter, change, tol)


class PageRank(Sampler):
    name = "pagerank"
    description = "The users with the highest PageRank in the user–item bipartite train graph (centrality)."
    Config = PageRankConfig

    def memory_footprint(self, shape: UnitShape) -> Footprint:
        """The graph as float64 CSR and its transpose (≈ 32 B per interaction) and ≈ 10 float64 vectors over
        users and items (PageRank, degrees, their inverses, the next iterate)."""
        return interaction_sampler_footprint(self.name, shape.n_users, shape.n_items, shape.nnz, per_interaction=32,
                                             per_user=96, per_item=96)

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> UserSubset:
        cfg = self.config
        self.convergence_ = None
        try:
            scores, _, iterations, change = power_iteration(data.train, cfg.damping, cfg.tol, cfg.max_iter)
        except PageRankNotConverged as err:
            self.convergence_ = {"iterations": err.iterations, "l1_change": err.change, "converged": False}
            raise
        self.convergence_ = {"iterations": iterations, "l1_change": change, "converged": True}
        return UserSubset(np.sort(top_k_random_ties(scores, min(budget, data.n_users), rng.random(data.n_users))))

    def diagnostics(self) -> dict:
        """Power-iteration steps taken and the final L1 change (``converged`` is False after a failure)."""
        return dict(getattr(self, "convergence_", None) or {})
