"""Gram blocks of interaction rows, ⟨a_i, b_j⟩: the dense GEMM, or an exact sparse product where it is cheaper.

Every closed form in cfbench starts from a Gram block of interaction rows: ∞-AE's kernel Θ(X_q, X_s) is a
function of ⟨x_q, x_s⟩ and the rows' squared norms; EASE factors XᵀX (primal) or XXᵀ (dual) and scores
through X_q Xᵀ. Interaction matrices are 95–99.9 % zeros, and a dense GEMM spends almost all of its
multiply-adds on zeros: on Gowalla (0.06 % dense) the 10,000-user support Gram takes 86 s as a GEMM on the
2-core machine and 0.16 s as a sparse product.

**Exact, not approximately equal.** Rows of real users are integer-valued (0/1). When both operands are
integer-valued and every partial sum is bounded below 2^p (p = the float's significand bits: 2²⁴ in float32,
2⁵³ in float64), each partial sum of *any* summation order is an integer the float represents exactly, so
the sparse product equals the dense GEMM bit for bit (and so do the squared norms). :func:`exact_pair`
checks that bound (Σ_k |a_k b_k| ≤ ‖a‖₁ · max|b|); real-valued rows (Distill-CF's synthetic users) always
take the dense GEMM. Which path runs is a speed decision that never changes a result.

**Which path is cheaper** (:func:`sparse_pays`): a GEMM does m·n·d multiply-adds at the machine's dense
rate; SciPy's sparse product does Σ_k deg_a(k)·deg_b(k) (the exact count: every pair of non-zeros that share
column k) plus the m·n dense output, single-threaded, about ``SPARSE_OP_COST_PER_CORE`` × (CPU cores)
times slower per operation. Break-even measured on the 2-core machine (ML-1M seed-0 train, float32, JAX
0.10.2): the full 6,040² user Gram, 5.1·10⁸ sparse operations against 1.35·10¹¹ dense multiply-adds, took
2.41 s sparse and 2.46 s dense (ratio ≈ 265); a 256-query block against 6,040 users 50 vs 76 ms. The sparse
path runs on the host, so it is used only when the arrays live on a CPU; on a GPU the GEMM is far cheaper.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

__all__ = ["SPARSE_OP_COST_PER_CORE", "SparseRows", "exact_pair", "exact_rows", "sparse_gram", "sparse_pays",
           "target_platform"]

#: Dense multiply-adds one sparse multiply-add costs, per CPU core (the GEMM is multi-threaded, SciPy's
#: sparse product is not): break-even ≈ 265 on the 2-core machine (module docstring).
SPARSE_OP_COST_PER_CORE = 130


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def target_platform() -> str:
    """The platform (``cpu``, ``gpu``, …) new arrays are placed on: ``jax.default_device``'s, else the backend's."""
    device = jax.config.jax_default_device
    if device is None:
        return jax.default_backend()
    if isinstance(device, str):
        return device
    return str(device.platform)


class SparseRows:
    """Integer-valued interaction rows kept sparse on the host, with what the exactness bound and the cost
    model need: the rows (CSR), their transpose (CSR, for products against them), the column degrees,
    each row's ‖·‖₁, the largest |entry|, and the squared row norms (exact integers, as float64)."""

    __slots__ = ("abs_max", "col_degree", "l1_max", "rows", "rows_t", "sq_norms")

    def __init__(self, rows: sp.csr_matrix, rows_t: sp.csr_matrix, col_degree: np.ndarray, l1_max: float,
                 abs_max: float, sq_norms: np.ndarray) -> None:
        self.rows, self.rows_t, self.col_degree = rows, rows_t, col_degree
        self.l1_max, self.abs_max, self.sq_norms = l1_max, abs_max, sq_norms

    @property
    def nbytes(self) -> int:
        """Host bytes held: the rows and their transpose (data, indices, index pointers), degrees and norms."""
        mats = (self.rows,) if self.rows_t is self.rows else (self.rows, self.rows_t)
        return sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in mats) + self.col_degree.nbytes + \
            self.sq_norms.nbytes

    @classmethod
    def of(cls, x: object, *, transpose: bool = True) -> SparseRows | None:
        """``x`` as :class:`SparseRows` if it is a sparse, finite, integer-valued 2-D matrix, else None.
        ``transpose=False`` skips building the transpose (for query blocks, which are never the right operand)."""
        if not sp.issparse(x) or x.ndim != 2:
            return None
        csr = sp.csr_matrix(x)
        if not csr.has_canonical_format:
            csr = csr.copy()
            csr.sum_duplicates()
        data = csr.data
        if data.dtype.kind not in "iuf" or not np.all(np.isfinite(data)) or not np.array_equal(data, np.rint(data)):
            return None
        absolute = np.abs(data.astype(np.float64))
        row_of = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
        row_l1 = np.bincount(row_of, weights=absolute, minlength=csr.shape[0])  # float64: exact integers
        sq_norms = np.bincount(row_of, weights=absolute * absolute, minlength=csr.shape[0])
        degree = np.bincount(csr.indices, minlength=csr.shape[1])
        return cls(csr, csr.T.tocsr() if transpose else csr, degree, float(row_l1.max(initial=0.0)),
                   float(absolute.max(initial=0.0)), sq_norms)


def exact_rows(x: object, dtype: object) -> SparseRows | None:
    """``x`` kept sparse for exact Gram products in ``dtype``: a :class:`SparseRows` if new arrays go to a CPU
    (the only place the sparse path runs) and ``x`` is a sparse integer-valued matrix whose self-products
    are exact, else None (then the caller uses the GEMM only)."""
    if target_platform() != "cpu":
        return None
    rows = SparseRows.of(x)
    return rows if rows is not None and exact_pair(rows, rows, dtype) else None


def _significand_limit(dtype: object) -> float:
    return float(2 ** (jnp.finfo(dtype).nmant + 1))


def exact_pair(a: SparseRows, b: SparseRows, dtype: object) -> bool:
    """Whether ⟨a_i, b_j⟩ and both sides' squared norms are exact in ``dtype`` in any summation order."""
    limit = _significand_limit(dtype)
    return max(min(a.l1_max * b.abs_max, b.l1_max * a.abs_max), a.l1_max * a.abs_max, b.l1_max * b.abs_max) < limit


def sparse_pays(a: SparseRows, b: SparseRows, platform: str | None = None) -> bool:
    """Whether the sparse product a·bᵀ is cheaper than the dense GEMM on ``platform`` (default: where new
    arrays go), by the cost model of the module docstring. Never on a GPU/TPU: the product runs on the host."""
    if (platform or target_platform()) != "cpu":
        return False
    m, n, d = a.rows.shape[0], b.rows.shape[0], a.rows.shape[1]
    sparse_ops = float(a.col_degree.astype(np.float64) @ b.col_degree.astype(np.float64)) + m * n
    return SPARSE_OP_COST_PER_CORE * _cores() * sparse_ops < float(m) * n * d


def sparse_gram(a: SparseRows, b: SparseRows, dtype: object, rows: slice | None = None) -> jax.Array:
    """a·bᵀ (rows ``rows`` of a, default all) as a dense device array of ``dtype``, by SciPy's sparse
    product; equal to the dense GEMM bit for bit where :func:`exact_pair` holds (the caller checks)."""
    left = a.rows if rows is None else a.rows[rows]
    product = (left @ b.rows_t).toarray()
    return jnp.asarray(product, dtype=dtype)
