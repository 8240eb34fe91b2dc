"""∞-AE (Sachdeva et al., NeurIPS 2022): kernel ridge regression with an autoencoder's NTK.

With support rows X_s (n × d), K = Θ(X_s, X_s) and the ridge scaled by the mean kernel
diagonal, the fitted model is

    α = (K + λ · tr(K)/n · I)⁻¹ X_s,        scores(X_q) = Θ(X_q, X_s) α.

Cost: O(n²d) for K, O(n³ + n²d) for the solve, O(m n d) to score m users; memory
O(n² + n d) plus one (block × n) kernel block at a time.

The kernel block Θ(X_q, X_s) does not depend on λ: ``fit_path`` shares K across the grid, and
``score_many`` computes each query block's Θ(X_q, X_s) once for all the models of one path.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self, cast

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from cfbench.devices import precise_jit
from cfbench.gram import SparseRows, exact_pair, exact_rows, sparse_gram, sparse_pays
from cfbench.models.base import (
    ClosedFormRecommender,
    NumericalError,
    Recommender,
    Support,
    as_dense,
    check_query_items,
    format_lambdas,
    parse_lambdas,
    resolve_dtype,
)
from cfbench.ntk import NTKConfig, ntk_from_gram
from cfbench.numerics import ridge_solve

if TYPE_CHECKING:
    from cfbench.memory import Footprint, UnitShape

__all__ = ["InfiniteAE", "kernel_matrix"]

DEFAULT_BLOCK = 2048


def _check_real(name: str, value: Any, minimum: float = 0.0) -> None:
    """A one-line ValueError unless ``value`` is a finite real number ≥ ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < minimum:
        raise ValueError(f"∞-AE {name} must be a finite number ≥ {minimum:g}, got {value!r}")


def _check_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"∞-AE {name} must be an integer ≥ {minimum}, got {value!r}")


@functools.partial(precise_jit, static_argnames=("config",))
def _kernel_block(rows: jax.Array, support: jax.Array, support_sq: jax.Array, config: NTKConfig) -> jax.Array:
    gram = rows @ support.T
    return ntk_from_gram(gram, jnp.sum(rows * rows, axis=1), support_sq, rows.shape[1], config)


@functools.partial(precise_jit, static_argnames=("n_features", "config"))
def _kernel_from_gram(gram: jax.Array, rows_sq: jax.Array, support_sq: jax.Array, n_features: int,
                      config: NTKConfig) -> jax.Array:
    # _kernel_block's elementwise part, for a Gram block computed elsewhere (cfbench.gram's exact sparse
    # product): the same fusion of the same inputs, so the same bits (tested).
    return ntk_from_gram(gram, rows_sq, support_sq, n_features, config)


@functools.partial(precise_jit, static_argnames=("config",))
def _score_block(rows: jax.Array, support: jax.Array, support_sq: jax.Array, alpha: jax.Array,
                 config: NTKConfig) -> jax.Array:
    return _kernel_block(rows, support, support_sq, config) @ alpha


@precise_jit
def _apply_alpha(kernel_block: jax.Array, alpha: jax.Array) -> jax.Array:
    # _score_block is this product of _kernel_block's output: XLA compiles the kernel block (a GEMM and
    # an elementwise fusion) and the product (a GEMM) as separate kernels either way, so computing them
    # in two jitted calls gives the same bits (tested, and checked on ML-1M).
    return kernel_block @ alpha


_ridge_solve = precise_jit(ridge_solve)  # α = (K + ρI)⁻¹ X, jitted on its own (the kernel is built blockwise)


def kernel_matrix(rows: jax.Array, support: jax.Array, config: NTKConfig = NTKConfig(),
                  block_size: int = DEFAULT_BLOCK) -> jax.Array:
    """Θ(rows, support), computed ``block_size`` rows at a time to bound temporary memory."""
    support_sq = jnp.sum(support * support, axis=1)
    blocks = [_kernel_block(rows[s:s + block_size], support, support_sq, config)
              for s in range(0, rows.shape[0], block_size)]
    return jnp.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]


def _sparse_kernel_matrix(rows: SparseRows, support_sq: jax.Array, dtype: Any, config: NTKConfig,
                          block_size: int) -> jax.Array:
    """Θ(X_s, X_s) from the exact sparse Gram, ``block_size`` rows at a time: ``kernel_matrix``'s bits."""
    n, d = rows.rows.shape
    blocks = [_kernel_from_gram(sparse_gram(rows, rows, dtype, slice(s, s + block_size)), support_sq[s:s + block_size],
                                support_sq, d, config) for s in range(0, n, block_size)]
    return jnp.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]


def _row_keys(rows: Support) -> list[tuple[bytes, bytes]]:
    """Each row's non-zeros as (column indices, float64 values) bytes: equal keys, equal rows."""
    csr = sp.csr_matrix(rows if sp.issparse(rows) else np.asarray(rows), copy=True)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    csr.sort_indices()
    indptr, indices, data = csr.indptr, csr.indices.astype(np.int64), csr.data.astype(np.float64)
    return [(indices[a:b].tobytes(), data[a:b].tobytes()) for a, b in zip(indptr[:-1], indptr[1:])]


def _row_index(rows: Support) -> dict[tuple[bytes, bytes], int]:
    """Support row of each distinct row key (the first of identical rows)."""
    index: dict[tuple[bytes, bytes], int] = {}
    for j, key in enumerate(_row_keys(rows)):
        index.setdefault(key, j)
    return index


class InfiniteAE(ClosedFormRecommender):
    """Infinitely wide autoencoder (Dense→ReLU→Dense NTK) fitted in closed form.

    Parameters
    ----------
    lam: ridge strength ≥ 0, relative to the mean kernel diagonal (the reference's λ). λ = 0 is
        allowed (the grid's first point); it fails with :class:`NumericalError` on a singular kernel.
    depth: number of hidden Dense→ReLU blocks (an integer ≥ 1).
    w_std, b_std: weight and bias standard deviations (NTK parameterisation), finite and ≥ 0.
    dtype: "float32" (default) or "float64" (needs JAX x64 mode).
    block_size: rows of the kernel computed at once (an integer ≥ 1).
    lambdas: the λ values searched on validation, '/'-separated (``"0/0.1/0.3/1/5/20/50/100"``) or a
        sequence; ``None`` (default) searches :attr:`lambda_grid`. Kept in its canonical spec form.
    exact_interpolation: at λ = 0 the fit interpolates its support, so a query identical to a support row is
        predicted as that row, exactly: its unseen items all score 0 and the evaluation's tie-break ranks them.
        Off (the default, what every published row computed), Θ(X_q, X_s)α gives those items float rounding
        noise instead (≈ 1e-7), which ranks them differently on another machine or dtype and can decide λ
        (README, "λ = 0 and rounding noise"). Part of a row's identity when on.

    Invalid values raise a one-line ValueError at construction (and again at ``fit``, as
    ``set_params`` does not construct).
    """

    name: ClassVar[str] = "infinite-ae"
    description: ClassVar[str] = "∞-AE: kernel ridge regression with the NTK of Dense→ReLU→Dense"
    lambda_grid: ClassVar[tuple[float, ...]] = (0.0, 1.0, 5.0, 20.0, 50.0, 100.0)

    def __init__(self, lam: float = 5.0, depth: int = 1, w_std: float = math.sqrt(2.0), b_std: float = 0.1,
                 dtype: str = "float32", block_size: int = DEFAULT_BLOCK,
                 lambdas: str | Sequence[float] | None = None, exact_interpolation: bool = False) -> None:
        self.lam = lam
        self.depth = depth
        self.w_std = w_std
        self.b_std = b_std
        self.dtype = dtype
        self.block_size = block_size
        grid = parse_lambdas(lambdas, "∞-AE")
        self.lambdas = None if grid is None else format_lambdas(grid)
        self.exact_interpolation = exact_interpolation
        self._check_params()

    def _check_params(self) -> None:
        _check_real("lam", self.lam)
        parse_lambdas(self.lambdas, "∞-AE")
        _check_int("depth", self.depth)
        _check_real("w_std", self.w_std)
        _check_real("b_std", self.b_std)
        _check_int("block_size", self.block_size)
        if not isinstance(self.exact_interpolation, bool | np.bool_):
            raise ValueError(f"∞-AE exact_interpolation must be true or false, got {self.exact_interpolation!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"∞-AE dtype must be 'float32' or 'float64', got {self.dtype!r}")

    @property
    def config(self) -> NTKConfig:
        return NTKConfig(self.depth, self.w_std, self.b_std)

    def _prepare(self, support: Support) -> tuple[jax.Array, jax.Array, jax.Array, SparseRows | None]:
        """The λ-independent work: the dense support, its squared norms, the kernel K, and the support kept
        sparse where its Gram products are exact (integer-valued rows; :mod:`cfbench.gram`)."""
        self._check_params()
        dtype = resolve_dtype(self.dtype)
        xs = as_dense(support, dtype)
        if xs.shape[0] == 0:
            raise ValueError("∞-AE needs at least one support user")
        xs_sq = jnp.sum(xs * xs, axis=1)
        rows = exact_rows(support, dtype)
        if rows is not None and sparse_pays(rows, rows):
            kernel = _sparse_kernel_matrix(rows, xs_sq, dtype, self.config, self.block_size)
        else:
            kernel = kernel_matrix(xs, xs, self.config, self.block_size)
        return xs, xs_sq, kernel, rows

    def _with_solution(self, xs: jax.Array, xs_sq: jax.Array, kernel: jax.Array, rows: SparseRows | None,
                       lam: float) -> Self:
        _check_real("lam", lam)  # a negative λ is an error, not |λ|
        ridge = lam * jnp.trace(kernel) / kernel.shape[0]
        alpha = _ridge_solve(kernel, xs, ridge.astype(kernel.dtype))
        if not bool(jnp.all(jnp.isfinite(alpha))):
            raise NumericalError(f"∞-AE solve with lam={lam} is not finite: the kernel is singular; use lam > 0")
        fitted = self.clone(lam=lam)
        fitted.support_, fitted.support_sq_, fitted.alpha_ = xs, xs_sq, alpha
        fitted.support_rows_ = rows
        fitted.self_rows_ = _row_index(rows.rows if rows is not None else sp.csr_matrix(np.asarray(xs))) \
            if lam == 0 and self.exact_interpolation else None
        return fitted

    def _interpolated(self, queries: Support, scores: jax.Array) -> jax.Array:
        """``scores`` with the rows of queries identical to a support row replaced by that row (λ = 0 and
        ``exact_interpolation`` only; see the class docstring)."""
        index: dict[tuple[bytes, bytes], int] | None = getattr(self, "self_rows_", None)
        if not index:
            return scores
        q_rows, s_rows = [], []
        for i, key in enumerate(_row_keys(queries)):
            j = index.get(key)
            if j is not None:
                q_rows.append(i)
                s_rows.append(j)
        if not q_rows:
            return scores
        return scores.at[jnp.asarray(q_rows)].set(self.support_[jnp.asarray(s_rows)].astype(scores.dtype))

    def memory_footprint(self, shape: UnitShape) -> Footprint:
        """Predicted peak memory of this model's λ search, timed fit and test evaluation on ``shape``
        (:func:`cfbench.memory.infinite_ae_footprint`); a method, so not part of a row's identity."""
        from cfbench.memory import infinite_ae_footprint

        return infinite_ae_footprint(shape.support_rows, shape.n_items, shape.queries, batch_size=shape.batch_size,
                                     dtype_bytes=8 if self.dtype == "float64" else 4, block_size=self.block_size,
                                     grid_size=len(self.search_grid), positives=shape.positives,
                                     mean_row=shape.mean_row, eval_chunks=shape.eval_chunks,
                                     support_nnz=shape.support_nnz)

    def _sparse_query_kernel(self, queries: Support) -> jax.Array | None:
        """Θ(X_q, X_s) through the exact sparse Gram where both sides allow it and it is cheaper, else None."""
        check_query_items(queries, int(self.support_.shape[1]), "∞-AE")
        support_rows: SparseRows | None = getattr(self, "support_rows_", None)
        if support_rows is None:
            return None
        rows = SparseRows.of(queries, transpose=False)
        dtype = self.alpha_.dtype
        if rows is None or not exact_pair(rows, support_rows, dtype) or not sparse_pays(rows, support_rows):
            return None
        return _kernel_from_gram(sparse_gram(rows, support_rows, dtype), jnp.asarray(rows.sq_norms, dtype),
                                 self.support_sq_, int(rows.rows.shape[1]), self.config)

    def _query_kernel(self, queries: Support) -> jax.Array:
        """Θ(X_q, X_s), by the sparse Gram or the dense one (the same bits either way)."""
        block = self._sparse_query_kernel(queries)
        if block is None:
            block = _kernel_block(as_dense(queries, self.alpha_.dtype), self.support_, self.support_sq_, self.config)
        return block

    def score(self, queries: Support) -> jax.Array:
        block = self._sparse_query_kernel(queries)
        if block is not None:
            return self._interpolated(queries, _apply_alpha(block, self.alpha_))
        q = as_dense(queries, self.alpha_.dtype)
        return self._interpolated(queries, _score_block(q, self.support_, self.support_sq_, self.alpha_, self.config))

    def _kernel_key(self) -> tuple[Any, ...] | None:
        """What Θ(X_q, X_s) depends on, or None where ``score`` is overridden (no sharing then)."""
        if type(self).score is not InfiniteAE.score:
            return None
        return (id(self.support_), id(self.support_sq_), id(getattr(self, "support_rows_", None)), self.config,
                self.alpha_.dtype)

    @classmethod
    def score_many(cls, queries: Support, models: Sequence[Recommender]) -> list[jax.Array]:
        """Each model's ``score(queries)``, bit for bit, computing Θ(X_q, X_s) once per group of models that
        share the support arrays and the architecture (the models of one ``fit_path``)."""
        groups: dict[tuple[Any, ...], list[tuple[int, InfiniteAE]]] = {}
        out: list[jax.Array | None] = [None] * len(models)
        for i, model in enumerate(models):
            key = model._kernel_key() if isinstance(model, InfiniteAE) else None
            if key is None:
                out[i] = model.score(queries)
            else:
                groups.setdefault(key, []).append((i, model))
        for members in groups.values():
            if len(members) == 1:
                i, model = members[0]
                out[i] = model.score(queries)
                continue
            block = members[0][1]._query_kernel(queries)
            for i, model in members:
                out[i] = model._interpolated(queries, _apply_alpha(block, model.alpha_))
        return cast(list[jax.Array], out)
