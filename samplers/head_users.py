"""``head-users``: the most active users (Head-User in the papers)."""

from __future__ import annotations

import numpy as np

from cfbench.memory import Footprint, UnitShape, interaction_sampler_footprint
from cfbench.numerics import top_k_random_ties
from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import UserSubset


class HeadUsers(Sampler):
    name = "head-users"
    description = "The users with the most train interactions (Head-User); ties broken at random."

    def memory_footprint(self, shape: UnitShape) -> Footprint:
        """Counts, random tie keys, the negated counts and the sort order (8 B per user each)."""
        return interaction_sampler_footprint(self.name, shape.n_users, shape.n_items, shape.nnz, per_user=48)

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> UserSubset:
        counts = data.user_counts
        top = top_k_random_ties(counts, min(budget, data.n_users), rng.random(data.n_users))  # random among ties
        return UserSubset(np.sort(top))
