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
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Self

import jax
import jax.numpy as jnp
import scipy.sparse as sp

from cfbench.devices import precise, precise_jit
from cfbench.gram import SparseRows, exact_pair, exact_rows, sparse_gram, sparse_pays
from cfbench.models.base import (
    ClosedFormRecommender,
    NumericalError,
    Support,
    as_dense,
    check_query_items,
    format_lambdas,
    parse_lambdas,
    resolve_dtype,
)
from cfbench.numerics import ridge_solve

if TYPE_CHECKING:
    from cfbench.memory import Footprint, UnitShape

__all__ = ["EASE"]


# The λ-independent Gram matrix and the λ-dependent solve are separate jitted steps, so that
# ``fit_path`` computes the Gram once for the whole grid. ``fit`` runs the same two steps, so a
# path fit is bit-for-bit a single fit (tested). The split itself matches the former single jitted
# function bit for bit: the Gram is a plain GEMM either way, and adding λI is exact.


@precise_jit
def _primal_gram(x: jax.Array) -> jax.Array:
    return x.T @ x


@precise_jit
def _primal_solve(gram: jax.Array, lam: jax.Array) -> jax.Array:
    d = gram.shape[0]
    p = ridge_solve(gram, jnp.eye(d, dtype=gram.dtype), lam)  # P = (XᵀX + λI)⁻¹
    b = -p / jnp.diag(p)[None, :]
    return b.at[jnp.diag_indices(d)].set(0.0)


@precise_jit
def _dual_gram(x: jax.Array) -> jax.Array:
    return x @ x.T


@precise_jit
def _dual_weights(gram: jax.Array, x: jax.Array, lam: jax.Array) -> jax.Array:
    return ridge_solve(gram, x, lam)  # W = (XXᵀ + λI)⁻¹ X


@precise_jit
def _dual_scale(x: jax.Array, w: jax.Array) -> jax.Array:
    return 1.0 / (1.0 - jnp.sum(x * w, axis=0))  # 1 / (1 − s), s_j = Σ_u X_uj W_uj


def _dual_solve(gram: jax.Array, x: jax.Array, lam: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(W, 1/(1 − s)) as two jitted steps: in one, XLA keeps a third n × d buffer beside W and the solve's
    intermediate (measured: peak 3 n·d·4 bytes instead of 2); the split gives the same bits (tested)."""
    w = _dual_weights(gram, x, lam)
    return w, _dual_scale(x, w)


@precise_jit
def _dual_score(q: jax.Array, x: jax.Array, w: jax.Array, inv_one_minus_s: jax.Array) -> jax.Array:
    return q - (q - (q @ x.T) @ w) * inv_one_minus_s[None, :]


@precise_jit
def _dual_score_from_gram(q: jax.Array, q_gram: jax.Array, w: jax.Array, inv_one_minus_s: jax.Array) -> jax.Array:
    # _dual_score with X_q Xᵀ computed elsewhere (cfbench.gram's exact sparse product): XLA runs that GEMM as
    # its own kernel either way, so the rest sees the same inputs and gives the same bits (tested).
    return q - (q - q_gram @ w) * inv_one_minus_s[None, :]


class EASE(ClosedFormRecommender):
    """EASE with ridge ``lam`` (absolute, on the Gram matrix XᵀX).

    Parameters
    ----------
    lam: ridge strength λ > 0, finite.
    solver: "auto" (primal when items ≤ users, else dual), "primal" or "dual"; both are exact.
    dtype: "float32" (default) or "float64" (needs JAX x64 mode).
    lambdas: the λ values (each > 0) searched on validation, '/'-separated (``"0.5/1/2/5/20"``) or a
        sequence; ``None`` (default) searches :attr:`lambda_grid`. Kept in its canonical spec form.

    Invalid values raise a one-line ValueError at construction (and again at ``fit``, as
    ``set_params`` does not construct).
    """

    name: ClassVar[str] = "ease"
    description: ClassVar[str] = "EASE: closed-form item-item ridge autoencoder with zero diagonal"
    # Log-spaced over four decades: λ acts on XᵀX, whose diagonal holds item counts, so it must
    # range from ~1 (a few support users, counts ≤ 10) to ~10⁴ (full data, counts in the thousands).
    lambda_grid: ClassVar[tuple[float, ...]] = (1.0, 5.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
                                                10000.0)

    def __init__(self, lam: float = 500.0, solver: str = "auto", dtype: str = "float32",
                 lambdas: str | Sequence[float] | None = None) -> None:
        self.lam = lam
        self.solver = solver
        self.dtype = dtype
        grid = parse_lambdas(lambdas, "EASE", strict=True)
        self.lambdas = None if grid is None else format_lambdas(grid)
        self._check_params()

    def _check_params(self) -> None:
        lam = self.lam
        if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not (math.isfinite(lam) and lam > 0):
            raise ValueError(f"EASE needs lam > 0 (finite), got {lam!r}")
        if self.solver not in ("auto", "primal", "dual"):
            raise ValueError(f"EASE solver must be 'auto', 'primal' or 'dual', got {self.solver!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"EASE dtype must be 'float32' or 'float64', got {self.dtype!r}")
        parse_lambdas(self.lambdas, "EASE", strict=True)

    def _prepare(self, support: Support) -> tuple[str, jax.Array | None, jax.Array, SparseRows | None]:
        """The λ-independent work: the solver, the dense support (None where nothing needs it: the primal
        solver with a sparse Gram), its Gram matrix (XᵀX or XXᵀ), and the support kept sparse where its Gram
        products are exact (integer-valued rows; :mod:`cfbench.gram`)."""
        self._check_params()
        dtype = resolve_dtype(self.dtype)
        if sp.issparse(support) and support.ndim == 2:
            n, d = support.shape
        else:
            dense = as_dense(support, dtype)
            (n, d), support = dense.shape, dense
        if n == 0:
            raise ValueError("EASE needs at least one support user")
        solver = ("primal" if d <= n else "dual") if self.solver == "auto" else self.solver
        if solver == "primal":
            columns = exact_rows(sp.csr_matrix(support).T, dtype) if sp.issparse(support) else None
            if columns is not None and sparse_pays(columns, columns):
                return solver, None, sparse_gram(columns, columns, dtype), None  # XᵀX; the solve needs only it
            x = as_dense(support, dtype)
            return solver, x, _primal_gram(x), None
        x = as_dense(support, dtype)
        rows = exact_rows(support, dtype)
        gram = sparse_gram(rows, rows, dtype) if rows is not None and sparse_pays(rows, rows) else _dual_gram(x)
        return solver, x, gram, rows

    def _with_solution(self, solver: str, x: jax.Array | None, gram: jax.Array, rows: SparseRows | None,
                       lam: float) -> Self:
        fitted = self.clone(lam=lam)
        fitted._check_params()
        lam_arr = jnp.asarray(lam, gram.dtype)
        fitted.solver_ = solver
        if solver == "primal":
            fitted.weights_ = _primal_solve(gram, lam_arr)
            state = (fitted.weights_,)
        else:
            fitted.support_, fitted.support_rows_ = x, rows
            fitted.dual_w_, fitted.dual_scale_ = _dual_solve(gram, x, lam_arr)
            state = (fitted.dual_w_, fitted.dual_scale_)
        if not all(bool(jnp.all(jnp.isfinite(a))) for a in state):
            raise NumericalError(f"EASE fit with lam={lam} is not finite; use a larger lam")
        return fitted

    def memory_footprint(self, shape: UnitShape) -> Footprint:
        """Predicted peak memory of this model's λ search, timed fit and test evaluation on ``shape``
        (:func:`cfbench.memory.ease_footprint`); a method, so not part of a row's identity."""
        from cfbench.memory import ease_footprint

        return ease_footprint(shape.support_rows, shape.n_items, shape.queries, batch_size=shape.batch_size,
                              dtype_bytes=8 if self.dtype == "float64" else 4, solver=self.solver,
                              grid_size=len(self.search_grid), positives=shape.positives, mean_row=shape.mean_row,
                              eval_chunks=shape.eval_chunks, support_nnz=shape.support_nnz)

    def score(self, queries: Support) -> jax.Array:
        n_items = int(self.weights_.shape[0] if self.solver_ == "primal" else self.support_.shape[1])
        check_query_items(queries, n_items, "EASE")
        if self.solver_ == "primal":
            q = as_dense(queries, self.weights_.dtype)
            with precise():
                return q @ self.weights_
        q = as_dense(queries, self.support_.dtype)
        support_rows: SparseRows | None = getattr(self, "support_rows_", None)
        if support_rows is not None:
            rows = SparseRows.of(queries, transpose=False)
            if rows is not None and exact_pair(rows, support_rows, q.dtype) and sparse_pays(rows, support_rows):
                return _dual_score_from_gram(q, sparse_gram(rows, support_rows, q.dtype), self.dual_w_,
                                             self.dual_scale_)
        return _dual_score(q, self.support_, self.dual_w_, self.dual_scale_)
