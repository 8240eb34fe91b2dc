"""``stratified-interactions``: the same fraction of every user's train interactions, at random.

With N train interactions, user counts n_u and the interaction budget K (the fraction b/U of N),
every user keeps about f·n_u interactions, chosen uniformly at random within the user. Each user
keeps at least ``m = min_per_user`` of them where the budget affords it, and the kept total is
exactly K:

1. Floor: l_u = min(m', n_u) with m' ≤ m the largest floor such that Σ_u l_u ≤ K.
2. Water-filling: the common fraction f ∈ [0, 1] solves Σ_u clip(f·n_u, l_u, n_u) = K (bisection);
   targets t_u = clip(f·n_u, l_u, n_u). Without binding floors f = K / N.
3. Largest-remainder rounding (Hamilton): q_u = ⌊t_u⌋, then +1 for the K − Σ⌊t_u⌋ users with the
   largest t_u − ⌊t_u⌋ (ties at random). So Σ q_u = K and |q_u − t_u| < 1 for every user.

The reference (sampling_cf ``freq_user_rns``) removes ⌈p·n_u⌉ rows per user, which may leave a
user with nothing and keeps slightly fewer than the nominal total; here the total is exact and a
floor of ``min_per_user`` (1 by default; 0 reproduces the reference's behaviour) is kept.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cfbench.memory import Footprint, UnitShape, interaction_sampler_footprint
from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import InteractionSubset

__all__ = ["StratifiedConfig", "StratifiedInteractions", "rank_within_users", "user_quotas"]

_BISECTION_STEPS = 100


def _floors(counts: np.ndarray, total: int, min_per_user: int) -> np.ndarray:
    """l_u = min(m', n_u) for the largest m' ≤ ``min_per_user`` with Σ l_u ≤ ``total``."""
    for floor in range(max(min_per_user, 0), 0, -1):
        lower = np.minimum(counts, floor)
        if lower.sum() <= total:
            return lower
    return np.zeros_like(counts)


def _common_fraction(counts: np.ndarray, lower: np.ndarray, total: int) -> float:
    """The largest f (to float precision) with Σ_u clip(f·n_u, l_u, n_u) ≤ ``total``."""
    lo, hi = 0.0, 1.0
    if np.clip(counts * hi, lower, counts).sum() <= total:
        return hi
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if np.clip(counts * mid, lower, counts).sum() <= total:
            lo = mid
        else:
            hi = mid
    return lo


def user_quotas(counts: np.ndarray, total: int, min_per_user: int, rng: np.random.Generator) -> np.ndarray:
    """Per-user numbers of interactions to keep: Σ q_u = ``total``, q_u ≈ f·n_u, q_u ≥ floor (see module doc)."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(min(max(total, 0), counts.sum()))
    lower = _floors(counts, total, min_per_user)
    targets = np.clip(counts * _common_fraction(counts, lower, total), lower, counts)
    quotas = np.minimum(np.floor(targets).astype(np.int64), counts)
    short = total - int(quotas.sum())  # ≥ 0 since Σ⌊t_u⌋ ≤ Σ t_u ≤ total
    order = np.lexsort((rng.random(counts.size), quotas - targets))  # largest remainder first
    order = order[quotas[order] < counts[order]][:short]
    quotas[order] += 1
    return quotas


def rank_within_users(indptr: np.ndarray, *keys: np.ndarray) -> np.ndarray:
    """Rank (0 = first) of each CSR entry within its row, ordered by ``keys`` as in ``np.lexsort`` (last key first)."""
    counts = np.diff(indptr)
    rows = np.repeat(np.arange(counts.size), counts)
    order = np.lexsort((*keys, rows))
    ranks = np.empty(rows.size, dtype=np.int64)
    ranks[order] = np.arange(rows.size) - indptr[rows[order]]
    return ranks


@dataclasses.dataclass(frozen=True)
class StratifiedConfig:
    min_per_user: int = 1  # interactions every user keeps where the budget affords it

    def __post_init__(self) -> None:
        if self.min_per_user < 0:
            raise ValueError(f"min_per_user must be ≥ 0, got {self.min_per_user}")


class StratifiedInteractions(Sampler):
    name = "stratified-interactions"
    description = "The same fraction b/U of every user's train interactions, at random (user-stratified RNS)."
    Config = StratifiedConfig

    def memory_footprint(self, shape: UnitShape) -> Footprint:
        """Per interaction: row ids, random keys, the lexsort order, ranks and their temporaries (int64 / float64),
        the repeated quotas and the mask; per user: counts, floors, targets and quotas."""
        return interaction_sampler_footprint(self.name, shape.n_users, shape.n_items, shape.nnz, per_interaction=80,
                                             per_user=64)

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> InteractionSubset:
        total = data.interaction_budget(budget)
        if total < 1:
            raise ValueError(f"sampler {self.name!r}: a budget of {budget} users allows no train interaction")
        quotas = user_quotas(data.user_counts, total, self.config.min_per_user, rng)
        ranks = rank_within_users(data.train.indptr, rng.random(data.train.nnz))
        return InteractionSubset(ranks < np.repeat(quotas, data.user_counts))
