"""The three kinds of data subset a sampler may return, and how models train on them.

* :class:`UserSubset` — real users, by row index into the train matrix.
* :class:`InteractionSubset` — real interactions, a boolean mask over the train matrix's
  non-zeros in CSR order (``train.indices``), i.e. a sub-matrix of train.
* :class:`SyntheticUsers` — a real-valued (users × items) matrix, e.g. distilled data.

Every model trains on :func:`support_matrix` of a subset; evaluation always folds in all real
users from their own history, whatever the subset.

Synthetic values must be finite with magnitude at most :data:`MAX_SYNTHETIC_VALUE` (10³);
negative values are allowed. Distill-CF's values lie in [0, 1], but the models are defined for
any real support rows: EASE is least squares on XᵀX and the ∞-AE NTK depends only on inner
products and norms (cos θ ∈ [−1, 1]). The bound exists because every model computes in float32
by default: see :data:`MAX_SYNTHETIC_VALUE`. An all-zero synthetic matrix is rejected (it carries
no interaction at all); all-zero synthetic rows are dropped by :func:`support_matrix`, as users
left with no interaction are for the other subset kinds.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

__all__ = ["MAX_SYNTHETIC_VALUE", "InteractionSubset", "Subset", "SubsetError", "SyntheticUsers", "UserSubset",
           "subset_size", "support_matrix", "validate_subset"]


#: Largest |value| accepted in :class:`SyntheticUsers`. Models compute in float32 (max ≈ 3.4·10³⁸):
#: with |x| ≤ M the largest intermediates are the Gram entries ⟨x, x'⟩ ≤ n_items·M² (≤ 10¹³ for
#: 10⁷ items) in XᵀX / XXᵀ and the NTK, and q·q' ≤ (σ_w²M² + σ_b²)² ≈ 4·10¹² in the NTK's √(q q'),
#: so nothing comes within 25 orders of magnitude of overflow, and ridge terms (EASE's λ ≥ 1 on XᵀX)
#: keep a meaningful scale. Distill-CF's values are in [0, 1] and 0/1 interactions are 1, so real
#: data never comes near; 1e30 (the fault that motivated the bound) overflows XᵀX to inf.
MAX_SYNTHETIC_VALUE = 1e3


class SubsetError(ValueError):
    """A sampler returned an invalid subset."""


@dataclasses.dataclass(frozen=True, eq=False)
class UserSubset:
    """Real users kept, as row indices of the train matrix."""

    users: np.ndarray
    kind = "users"


@dataclasses.dataclass(frozen=True, eq=False)
class InteractionSubset:
    """Real train interactions kept: a boolean mask aligned with ``train.indices`` (CSR order)."""

    mask: np.ndarray
    kind = "interactions"


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticUsers:
    """Synthetic users: a real-valued (users × items) matrix, used as-is as support rows."""

    matrix: np.ndarray
    kind = "synthetic"


Subset = UserSubset | InteractionSubset | SyntheticUsers


def support_matrix(subset: Subset, train: sp.csr_matrix) -> sp.csr_matrix | np.ndarray:
    """The support rows a model trains on; users left with no interaction are dropped."""
    if isinstance(subset, UserSubset):
        return train[np.sort(subset.users)]
    if isinstance(subset, InteractionSubset):
        kept = sp.csr_matrix((train.data * subset.mask, train.indices, train.indptr), shape=train.shape, copy=True)
        kept.eliminate_zeros()
        return kept[np.diff(kept.indptr) > 0]
    if isinstance(subset, SyntheticUsers):
        matrix = np.asarray(subset.matrix)
        nonzero = np.any(matrix != 0, axis=1)
        return matrix if nonzero.all() else matrix[nonzero]
    raise SubsetError(f"unknown subset type {type(subset).__name__}")


def subset_size(subset: Subset, train: sp.csr_matrix) -> dict[str, float]:
    """Users, interactions (non-zeros), total interaction weight and fraction of train interactions."""
    support = support_matrix(subset, train)
    nnz = int(support.nnz) if sp.issparse(support) else int(np.count_nonzero(support))
    weight = float(support.sum())
    return {"n_users": int(support.shape[0]), "n_interactions": nnz, "interaction_weight": weight,
            "fraction_train_interactions": weight / max(train.nnz, 1)}


def interaction_budget(budget: int, train: sp.csr_matrix) -> int:
    """Interactions that a budget of ``budget`` users buys: the same fraction b/U of train interactions."""
    return int(round(train.nnz * min(budget, train.shape[0]) / train.shape[0]))


def validate_subset(subset: object, train: sp.csr_matrix, budget: int, who: str) -> Subset:
    """Check what a sampler returned; raise :class:`SubsetError` naming ``who`` and the problem."""
    n_users, n_items = train.shape
    if isinstance(subset, UserSubset):
        users = np.asarray(subset.users)
        if users.size == 0:  # before the dtype check: an empty Python list becomes float64
            raise SubsetError(f"sampler {who!r} returned no users")
        if users.dtype == bool:
            raise SubsetError(f"sampler {who!r} returned a boolean array as user indices; UserSubset takes row "
                              f"indices: pass np.flatnonzero(mask)")
        if users.ndim != 1 or not np.issubdtype(users.dtype, np.integer):
            raise SubsetError(f"sampler {who!r} returned user indices of dtype {users.dtype} and shape "
                              f"{users.shape}; expected a 1-D integer array")
        if users.min() < 0 or users.max() >= n_users:
            raise SubsetError(f"sampler {who!r} returned user indices outside [0, {n_users})")
        if np.unique(users).size != users.size:
            raise SubsetError(f"sampler {who!r} returned duplicate user indices")
        if users.size > budget:
            raise SubsetError(f"sampler {who!r} returned {users.size} users for a budget of {budget}")
        return UserSubset(users.astype(np.int64))
    if isinstance(subset, InteractionSubset):
        mask = np.asarray(subset.mask)
        if mask.dtype != bool or mask.shape != (train.nnz,):
            raise SubsetError(f"sampler {who!r} returned an interaction mask of dtype {mask.dtype} and shape "
                              f"{mask.shape}; expected bool of shape ({train.nnz},), aligned with train.indices")
        allowed = interaction_budget(budget, train)
        if mask.sum() == 0:
            raise SubsetError(f"sampler {who!r} kept no interactions")
        if mask.sum() > allowed:
            raise SubsetError(f"sampler {who!r} kept {int(mask.sum())} interactions; a budget of {budget} users "
                              f"allows {allowed} ({budget}/{n_users} of train)")
        return InteractionSubset(mask)
    if isinstance(subset, SyntheticUsers):
        matrix = subset.matrix.toarray() if sp.issparse(subset.matrix) else np.asarray(subset.matrix)
        if matrix.ndim != 2 or matrix.shape[1] != n_items:
            raise SubsetError(f"sampler {who!r} returned synthetic users of shape {matrix.shape}; "
                              f"expected (≤{budget}, {n_items})")
        if not np.issubdtype(matrix.dtype, np.floating) and not np.issubdtype(matrix.dtype, np.integer):
            raise SubsetError(f"sampler {who!r} returned synthetic users of dtype {matrix.dtype}; "
                              f"expected a real (float or integer) matrix")
        if matrix.shape[0] == 0 or matrix.shape[0] > budget:
            raise SubsetError(f"sampler {who!r} returned {matrix.shape[0]} synthetic users for a budget of {budget}")
        finite = np.isfinite(matrix)
        if not finite.all():
            raise SubsetError(f"sampler {who!r} returned {int(matrix.size - finite.sum())} non-finite values "
                              f"(NaN or inf) in its synthetic users")
        largest = float(np.abs(matrix).max())
        if largest > MAX_SYNTHETIC_VALUE:
            raise SubsetError(f"sampler {who!r} returned synthetic values up to {largest:.3g} in magnitude; the "
                              f"bound is {MAX_SYNTHETIC_VALUE:g} (larger values overflow float32 in XᵀX and the NTK)")
        if largest == 0:
            raise SubsetError(f"sampler {who!r} returned an all-zero synthetic matrix (no interaction to learn from)")
        return SyntheticUsers(matrix.astype(np.float32))
    raise SubsetError(f"sampler {who!r} returned {type(subset).__name__}; expected UserSubset, "
                      "InteractionSubset or SyntheticUsers")
