"""``pagerank``: the users most central in the user–item bipartite train graph (PageRank).

The graph has U + I nodes and an undirected edge per train interaction, adjacency
A = [[0, X], [Xᵀ, 0]] with degrees d. PageRank with damping α solves

    p = α (A D⁻¹ p + (Σ_{dangling j} p_j) / n · 1) + (1 − α) / n · 1,   n = U + I,

(dangling nodes, items nobody trains on, spread their mass uniformly), by power iteration until
‖p_{t+1} − p_t‖₁ < ``tol``. The b users with the largest p_u are kept, ties at random.

The reference (sampling_cf ``pagerank``, networkit, tol 1e-6) walks all nodes — users and items —
from the lowest score and removes their edges, an interaction-level subset; this sampler keeps
whole users, as the budget here is a number of users.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import UserSubset

__all__ = ["PageRank", "PageRankConfig", "bipartite_pagerank"]


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
    """PageRank (p_users, p_items) of the bipartite graph of ``train``'s non-zeros (weights ignored)."""
    x = sp.csr_matrix((np.ones(train.nnz), train.indices, train.indptr), shape=train.shape)
    n_users, n_items = x.shape
    n = n_users + n_items
    deg_u, deg_i = np.diff(x.indptr).astype(np.float64), np.bincount(x.indices, minlength=n_items).astype(np.float64)
    inv_u, inv_i = np.divide(1.0, deg_u, where=deg_u > 0, out=np.zeros(n_users)), \
        np.divide(1.0, deg_i, where=deg_i > 0, out=np.zeros(n_items))
    xt = x.T.tocsr()
    p_u, p_i = np.full(n_users, 1.0 / n), np.full(n_items, 1.0 / n)
    for _ in range(max_iter):
        dangling = p_u[deg_u == 0].sum() + p_i[deg_i == 0].sum()
        base = (1.0 - damping) / n + damping * dangling / n
        new_u = base + damping * (x @ (p_i * inv_i))
        new_i = base + damping * (xt @ (p_u * inv_u))
        change = np.abs(new_u - p_u).sum() + np.abs(new_i - p_i).sum()
        p_u, p_i = new_u, new_i
        if change < tol:
            break
    return p_u, p_i


class PageRank(Sampler):
    name = "pagerank"
    description = "The users with the highest PageRank in the user–item bipartite train graph (centrality)."
    Config = PageRankConfig

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> UserSubset:
        cfg = self.config
        scores, _ = bipartite_pagerank(data.train, cfg.damping, cfg.tol, cfg.max_iter)
        order = np.lexsort((rng.random(data.n_users), -scores))
        return UserSubset(np.sort(order[: min(budget, data.n_users)]))
