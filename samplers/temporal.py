"""``temporal``: every user keeps their latest train interactions; the earliest are removed.

Per-user quotas q_u are those of ``stratified-interactions`` (Σ q_u = the interaction budget K,
q_u ≈ f·n_u, at least ``min_per_user`` where affordable); user u keeps its q_u train interactions
with the largest timestamps, ties broken at random. The reference (sampling_cf ``temporal``)
removes each user's earliest ⌈p·n_u⌉ rows.
"""

from __future__ import annotations


import numpy as np
import scipy.sparse as sp

from cfbench.memory import Footprint, UnitShape, interaction_sampler_footprint
from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import InteractionSubset
from samplers.stratified_interactions import StratifiedConfig, rank_within_users, user_quotas


#: The same per-user floor as stratified sampling: the two differ only in which interactions they keep.
TemporalConfig = StratifiedConfig


def aligned_timestamps(train: sp.csr_matrix, timestamps: sp.csr_matrix) -> np.ndarray:
    """The timestamp of each train entry in CSR order; raises if the two matrices' sparsity differs."""
    if (timestamps.shape != train.shape or timestamps.nnz != train.nnz
            or not np.array_equal(timestamps.indptr, train.indptr)
            or not np.array_equal(timestamps.indices, train.indices)):
        raise ValueError("train timestamps do not have the sparsity of the train matrix")
    return np.asarray(timestamps.data)


class Temporal(Sampler):
    name = "temporal"
    description = "Each user's latest train interactions, the fraction b/U of them (earliest removed)."
    Config = TemporalConfig

    def memory_footprint(self, shape: UnitShape) -> Footprint:
        """As stratified-interactions, with the negated timestamps as one more sort key."""
        return interaction_sampler_footprint(self.name, shape.n_users, shape.n_items, shape.nnz, per_interaction=88,
                                             per_user=64)

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> InteractionSubset:
        if data.train_timestamps is None:
            raise ValueError(f"sampler {self.name!r} needs interaction timestamps, "
                             f"but dataset {data.dataset!r} has none")
        times = aligned_timestamps(data.train, data.train_timestamps)
        total = data.interaction_budget(budget)
        if total < 1:
            raise ValueError(f"sampler {self.name!r}: a budget of {budget} users allows no train interaction")
        quotas = user_quotas(data.user_counts, total, self.config.min_per_user, rng)
        ranks = rank_within_users(data.train.indptr, rng.random(times.size), -times)  # latest first
        return InteractionSubset(ranks < np.repeat(quotas, data.user_counts))
