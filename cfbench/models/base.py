"""The model interface every recommender in cfbench follows.

scikit-learn conventions: hyper-parameters are constructor arguments, ``fit`` learns from a
*support* matrix (users × items: real users' 0/1 rows, a subset of them, or real-valued
synthetic users) and returns ``self``; learned state ends in ``_``. ``score`` folds in any
query users from their interaction rows and returns a dense (queries × items) score block.

Every model has exactly one tuned hyper-parameter, ``lam`` (a ridge strength), chosen on
validation from ``search_grid``: the class's ``lambda_grid``, or the model's own ``lambdas``
hyper-parameter where it has one and it is set (``infinite-ae:lambdas=0/0.1/0.3/1/5``).
``fit_path`` fits the whole grid and may share work between grid points (∞-AE reuses its kernel
matrix); ``score_many`` scores the same queries with several fitted models and may share work between
them too (∞-AE reuses each kernel block).
"""

from __future__ import annotations

import abc
import copy
import functools
import math
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Self

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from cfbench.devices import precise_jit

__all__ = ["ClosedFormRecommender", "NumericalError", "Recommender", "Support", "as_dense", "check_query_items",
           "format_lambdas", "padded_coordinates", "parse_lambdas"]

Support = sp.spmatrix | sp.sparray | np.ndarray | jax.Array


class NumericalError(ArithmeticError):
    """A fit produced non-finite numbers (e.g. an unregularised singular system)."""


def padded_coordinates(x: sp.spmatrix | sp.sparray, pad_row: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x``'s (row, column, value) triplets as int32 / int32 / ``x.dtype`` arrays padded to a power of two
    in length (padding rows are ``pad_row``, out of range when it is ``x.shape[0]``), so that jitted
    scatters compile once per size class, not once per matrix."""
    coo = x.tocoo()
    if not getattr(coo, "has_canonical_format", True):
        coo = coo.copy()
        coo.sum_duplicates()
    n = coo.nnz
    size = 1 << max(n - 1, 0).bit_length()
    rows = np.full(size, pad_row, dtype=np.int32)
    cols = np.zeros(size, dtype=np.int32)
    vals = np.zeros(size, dtype=coo.dtype)
    rows[:n], cols[:n], vals[:n] = coo.row, coo.col, coo.data
    return rows, cols, vals


@functools.partial(precise_jit, static_argnames=("shape", "dtype"))
def _scatter_dense(rows: jax.Array, cols: jax.Array, vals: jax.Array, shape: tuple[int, int],
                   dtype: Any) -> jax.Array:
    return jnp.zeros(shape, dtype).at[rows, cols].add(vals.astype(dtype), mode="drop")


def as_dense(x: Support, dtype: Any) -> jax.Array:
    """A dense device array of ``x`` in ``dtype``; sparse input is densified on the device.

    Sparse input is scattered into zeros inside XLA (equal to ``jnp.asarray(x.toarray(), dtype)`` bit for
    bit): copying a host-dense matrix into a device buffer cost 3× the scatter (e.g. 33 vs 11 ms for a
    256 × 40,981 query chunk, a large share of every evaluation on many items).
    """
    if sp.issparse(x):
        if x.ndim != 2:
            raise ValueError(f"expected a 2-D users × items matrix, got shape {x.shape}")
        shape = (int(x.shape[0]), int(x.shape[1]))
        rows, cols, vals = padded_coordinates(x, shape[0])
        dtype = jnp.dtype(dtype)
        return _scatter_dense(rows, cols, vals.astype(dtype), shape=shape, dtype=dtype)
    arr = jnp.asarray(x, dtype=dtype)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D users × items matrix, got shape {arr.shape}")
    return arr


def check_query_items(queries: Support, n_items: int, model: str) -> None:
    """A one-line ValueError unless ``queries`` is a 2-D matrix over the ``n_items`` items the model was fitted on."""
    shape = getattr(queries, "shape", None)
    if shape is None or len(shape) != 2:
        raise ValueError(f"{model}: expected a 2-D users × items query matrix, got shape {shape}")
    if int(shape[1]) != n_items:
        raise ValueError(f"{model}: the queries have {int(shape[1])} items but the model was fitted on {n_items}; "
                         f"score users over the support's item columns")


def parse_lambdas(value: Any, model: str, minimum: float = 0.0, strict: bool = False) -> tuple[float, ...] | None:
    """A λ grid from ``"0/0.1/1"`` (the spec form), a sequence of numbers or None (the class's grid).

    The values must be finite, ≥ ``minimum`` (> it where ``strict``), distinct; they are returned in
    ascending order (the search keeps the first best, so the order only matters on exact ties). Anything
    else is a one-line ValueError naming the model.
    """
    if value is None:
        return None
    items: list[Any]
    if isinstance(value, str):
        items = [v.strip() for v in value.split("/")]
    elif isinstance(value, Sequence):
        items = list(value)
    else:
        raise ValueError(f"{model} lambdas must be '/'-separated numbers such as '0/0.1/1/5', got {value!r}")
    grid: list[float] = []
    for item in items:
        try:
            lam = float(item) if not isinstance(item, bool) else math.nan
        except (TypeError, ValueError):
            lam = math.nan
        if not math.isfinite(lam) or lam < minimum or (strict and lam == minimum):
            bound = f"> {minimum:g}" if strict else f"≥ {minimum:g}"
            raise ValueError(f"{model} lambdas must be finite numbers {bound} separated by '/', got {item!r} "
                             f"in {value!r}")
        grid.append(lam)
    if not grid:
        raise ValueError(f"{model} lambdas must name at least one value, e.g. '0/0.1/1/5'")
    if len(set(grid)) != len(grid):
        raise ValueError(f"{model} lambdas repeat a value: {value!r}")
    return tuple(sorted(grid))


def format_lambdas(grid: Sequence[float]) -> str:
    """The spec form of a λ grid, ``"0/0.1/1"``: what :func:`parse_lambdas` reads back to the same floats."""
    return "/".join(repr(float(v)).removesuffix(".0") for v in grid)


def resolve_dtype(dtype: str) -> Any:
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError("float64 needs JAX x64 mode: set JAX_ENABLE_X64=1 or pass --dtype float64 to the CLI")
    return jnp.dtype(dtype)


class Recommender(abc.ABC):
    """A model fitted on a support matrix that scores query users by folding in their history."""

    name: ClassVar[str]
    description: ClassVar[str]
    lambda_grid: ClassVar[tuple[float, ...]]
    #: Bump when the model computes something different for the same hyper-parameters: rows written
    #: by an older version are then re-run (and the old rows archived) instead of being reused.
    version: ClassVar[str] = "1"
    lam: float

    @abc.abstractmethod
    def fit(self, support: Support) -> Self:
        """Learn from ``support`` (users × items) and return ``self``."""

    @abc.abstractmethod
    def score(self, queries: Support) -> jax.Array:
        """Scores (queries × items) for users whose interactions are the rows of ``queries``."""

    @classmethod
    def score_many(cls, queries: Support, models: Sequence[Recommender]) -> list[jax.Array]:
        """``[m.score(queries) for m in models]``: the scores of several fitted models for the same queries.

        Subclasses may override it to share work that does not depend on the fitted state (e.g. between
        the models of one ``fit_path``); an override must return exactly, bit for bit, what each
        ``m.score(queries)`` returns, and fall back to it for models it cannot share work between.
        """
        return [m.score(queries) for m in models]

    @property
    def search_grid(self) -> tuple[float, ...]:
        """The λ values the harness searches on validation: the ``lambdas`` hyper-parameter where the model
        has one and it is set, else the class's ``lambda_grid``."""
        own = getattr(self, "lambdas", None)
        grid = None if own is None else parse_lambdas(own, self.name)
        return tuple(self.lambda_grid) if grid is None else grid

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def set_params(self, **params: Any) -> Self:
        for key, value in params.items():
            if key not in self.get_params():
                raise ValueError(f"{type(self).__name__} has no hyper-parameter {key!r}")
            setattr(self, key, value)
        return self

    def clone(self, **params: Any) -> Self:
        """An unfitted copy with the same hyper-parameters, updated by ``params``."""
        new = copy.copy(self)
        for key in list(vars(new)):
            if key.endswith("_"):
                delattr(new, key)
        return new.set_params(**params)

    def fit_path(self, support: Support, grid: Sequence[float]) -> Iterator[tuple[float, Self | NumericalError]]:
        """Yield ``(lam, fitted model)`` for each ``lam`` in ``grid``, or ``(lam, error)`` where that fit failed.

        Models may share work across the grid (∞-AE computes its kernel once).
        """
        for lam in grid:
            try:
                yield lam, self.clone(lam=lam).fit(support)
            except NumericalError as err:
                yield lam, err

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


class ClosedFormRecommender(Recommender):
    """A recommender whose fit is a closed form in two parts: :meth:`_prepare`, everything that does not
    depend on λ (the dense support, a Gram matrix or kernel), and :meth:`_with_solution`, the fitted model
    for one λ. :meth:`fit` and :meth:`fit_path` are written once here, so a λ path shares the first part and
    each of its fits equals ``clone(lam=λ).fit`` bit for bit (both run the very same two steps)."""

    @abc.abstractmethod
    def _prepare(self, support: Support) -> tuple[Any, ...]:
        """What the fit of every λ shares, computed once per support."""

    @abc.abstractmethod
    def _with_solution(self, *prepared_and_lam: Any) -> Self:
        """A fitted copy for ``(*self._prepare(support), lam)``; raises :class:`NumericalError` if it fails."""

    def fit(self, support: Support) -> Self:
        fitted = self._with_solution(*self._prepare(support), self.lam)
        self.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
        return self

    def fit_path(self, support: Support, grid: Sequence[float]) -> Iterator[tuple[float, Self | NumericalError]]:
        """Yield ``(lam, fitted model)`` or ``(lam, NumericalError)`` for each λ, :meth:`_prepare` run once."""
        prepared = self._prepare(support)  # shared by every λ
        for lam in grid:
            try:
                yield lam, self._with_solution(*prepared, lam)
            except NumericalError as err:
                yield lam, err
