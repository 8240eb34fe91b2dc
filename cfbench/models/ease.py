"""EASE (Steck, WWW 2019): a closed-form item-item linear autoencoder with a zero diagonal.

    P = (XᵀX + λI)⁻¹,    B = I − P · diag(1/diag(P)),    scores(X_q) = X_q B.

Each column of B is the ridge regression of that item on all other items. Real-valued
support rows (synthetic users) enter exactly the same way: XᵀX is then a weighted Gram
matrix, and B is the least-squares item-item map that reconstructs those rows.

Two exact solvers:

* **primal** (items ≤ users): factor the d × d matrix XᵀX + λI; O(n d² + d³).
* **dual** (users < items, the case of data subsets): Woodbury,
  P = (I − Xᵀ(XXᵀ + λI)⁻¹X)/λ, so with W = (XXᵀ + λI)⁻¹X and s_j = Σ_u X_uj W_uj,
  X_q B = X_q − (X_q − (X_q Xᵀ) W) · diag(1/(1 − s)); O(n² d + n³), and B (d × d) is never formed.
"""

from __future__ import annotations

import math
import numbers
from typing import ClassVar, Self

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from cfbench.models.base import NumericalError, Recommender, Support, as_dense, resolve_dtype

__all__ = ["EASE"]


@jax.jit
def _primal_weights(x: jax.Array, lam: jax.Array) -> jax.Array:
    d = x.shape[1]
    gram = x.T @ x + lam * jnp.eye(d, dtype=x.dtype)
    chol = jnp.linalg.cholesky(gram)
    p = jsl.cho_solve((chol, True), jnp.eye(d, dtype=x.dtype))
    b = -p / jnp.diag(p)[None, :]
    return b.at[jnp.diag_indices(d)].set(0.0)


@jax.jit
def _dual_weights(x: jax.Array, lam: jax.Array) -> tuple[jax.Array, jax.Array]:
    n = x.shape[0]
    chol = jnp.linalg.cholesky(x @ x.T + lam * jnp.eye(n, dtype=x.dtype))
    w = jsl.cho_solve((chol, True), x)  # (XXᵀ + λI)⁻¹ X
    s = jnp.sum(x * w, axis=0)
    return w, 1.0 / (1.0 - s)


@jax.jit
def _dual_score(q: jax.Array, x: jax.Array, w: jax.Array, inv_one_minus_s: jax.Array) -> jax.Array:
    return q - (q - (q @ x.T) @ w) * inv_one_minus_s[None, :]


class EASE(Recommender):
    """EASE with ridge ``lam`` (absolute, on the Gram matrix XᵀX).

    Parameters
    ----------
    lam: ridge strength λ > 0, finite.
    solver: "auto" (primal when items ≤ users, else dual), "primal" or "dual"; both are exact.
    dtype: "float32" (default) or "float64" (needs JAX x64 mode).

    Invalid values raise a one-line ValueError at construction (and again at ``fit``, as
    ``set_params`` does not construct).
    """

    name: ClassVar[str] = "ease"
    description: ClassVar[str] = "EASE: closed-form item-item ridge autoencoder with zero diagonal"
    # Log-spaced over four decades: λ acts on XᵀX, whose diagonal holds item counts, so it must
    # range from ~1 (a few support users, counts ≤ 10) to ~10⁴ (full data, counts in the thousands).
    lambda_grid: ClassVar[tuple[float, ...]] = (1.0, 5.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
                                                10000.0)

    def __init__(self, lam: float = 500.0, solver: str = "auto", dtype: str = "float32") -> None:
        self.lam = lam
        self.solver = solver
        self.dtype = dtype
        self._check_params()

    def _check_params(self) -> None:
        lam = self.lam
        if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not (math.isfinite(lam) and lam > 0):
            raise ValueError(f"EASE needs lam > 0 (finite), got {lam!r}")
        if self.solver not in ("auto", "primal", "dual"):
            raise ValueError(f"EASE solver must be 'auto', 'primal' or 'dual', got {self.solver!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"EASE dtype must be 'float32' or 'float64', got {self.dtype!r}")

    def fit(self, support: Support) -> Self:
        self._check_params()
        x = as_dense(support, resolve_dtype(self.dtype))
        n, d = x.shape
        if n == 0:
            raise ValueError("EASE needs at least one support user")
        lam = jnp.asarray(self.lam, x.dtype)
        self.solver_ = ("primal" if d <= n else "dual") if self.solver == "auto" else self.solver
        if self.solver_ == "primal":
            self.weights_ = _primal_weights(x, lam)
            state = (self.weights_,)
        else:
            self.support_ = x
            self.dual_w_, self.dual_scale_ = _dual_weights(x, lam)
            state = (self.dual_w_, self.dual_scale_)
        if not all(bool(jnp.all(jnp.isfinite(a))) for a in state):
            raise NumericalError(f"EASE fit with lam={self.lam} is not finite; use a larger lam")
        return self

    def score(self, queries: Support) -> jax.Array:
        if self.solver_ == "primal":
            q = as_dense(queries, self.weights_.dtype)
            return q @ self.weights_
        q = as_dense(queries, self.support_.dtype)
        return _dual_score(q, self.support_, self.dual_w_, self.dual_scale_)
