"""The ∞-AE NTK between train users, one column block at a time (shared by the coreset samplers).

Users are the rows x_u ∈ {0, 1}^I of the train matrix X (U × I). Θ is :func:`cfbench.ntk.ntk_from_gram`
applied to the Gram block X Xᵀ[:, S] of a column set S, which costs O(nnz(X) · |S|) with a sparse X
and a dense X_Sᵀ, so no U × U matrix is ever held: the samplers ask for the columns they need.
The feature-space distance is d(u, v)² = Θ(u, u) + Θ(v, v) − 2 Θ(u, v).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
import scipy.sparse as sp

from cfbench.devices import precise_jit
from cfbench.ntk import NTKConfig, ntk_diagonal, ntk_from_gram

__all__ = ["UserKernel", "mean_embedding", "ntk_config"]


def ntk_config(depth: int, w_std: float, b_std: float) -> NTKConfig:
    return NTKConfig(depth=depth, w_std=w_std, b_std=b_std)


@functools.partial(precise_jit, static_argnames=("n_features", "config"))
def _ntk_columns(gram: jax.Array, sq_rows: jax.Array, sq_cols: jax.Array, n_features: int,
                 config: NTKConfig) -> jax.Array:
    return ntk_from_gram(gram, sq_rows, sq_cols, n_features, config)


@dataclasses.dataclass(frozen=True, eq=False)
class UserKernel:
    """Θ between the rows of a sparse users × items matrix, computed column block by column block."""

    x: sp.csr_matrix  # U × I, float32
    sq_norms: np.ndarray  # (U,) ⟨x_u, x_u⟩
    diagonal: np.ndarray  # (U,) Θ(u, u), float64
    config: NTKConfig

    @classmethod
    def of(cls, train: sp.csr_matrix, config: NTKConfig) -> UserKernel:
        x = sp.csr_matrix(train, dtype=np.float32)
        sq = np.asarray(x.multiply(x).sum(axis=1), dtype=np.float32).ravel()
        diagonal = np.asarray(ntk_diagonal(sq, x.shape[1], config), dtype=np.float64)
        return cls(x, sq, diagonal, config)

    @property
    def n_users(self) -> int:
        return self.x.shape[0]

    def columns(self, users: np.ndarray) -> np.ndarray:
        """Θ(X, X_S): (U, |S|) float64, from the Gram block X · X_Sᵀ (sparse × dense)."""
        users = np.atleast_1d(users)
        gram = self.x @ self.x[users].toarray().T
        theta = _ntk_columns(gram.astype(np.float32), self.sq_norms, self.sq_norms[users], self.x.shape[1],
                             self.config)
        return np.asarray(theta, dtype=np.float64)

    def column(self, user: int) -> np.ndarray:
        """Θ(X, x_user): (U,)."""
        return self.columns(np.array([user]))[:, 0]

    def squared_distances(self, user: int) -> np.ndarray:
        """d(·, user)² = Θ(u, u) + Θ(user, user) − 2 Θ(u, user), clipped at 0 (rounding)."""
        return np.maximum(self.diagonal + self.diagonal[user] - 2.0 * self.column(user), 0.0)


def mean_embedding(kernel: UserKernel, reference: np.ndarray, block_size: int) -> np.ndarray:
    """μ(u) = (1/|R|) Σ_{v ∈ R} Θ(u, v) for every user u, accumulated over blocks of the reference set R."""
    total = np.zeros(kernel.n_users)
    for start in range(0, reference.size, block_size):
        total += kernel.columns(reference[start:start + block_size]).sum(axis=1)
    return total / reference.size
