"""``random-users``: users drawn uniformly without replacement (User-RNS in the papers)."""

from __future__ import annotations

import numpy as np

from cfbench.memory import Footprint, UnitShape, interaction_sampler_footprint
from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import UserSubset


class RandomUsers(Sampler):
    name = "random-users"
    description = "Uniformly random users, without replacement (User-RNS)."

    def memory_footprint(self, shape: UnitShape) -> Footprint:
        """A permutation of the users and the chosen indices (int64)."""
        return interaction_sampler_footprint(self.name, shape.n_users, shape.n_items, shape.nnz, per_user=24)

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> UserSubset:
        return UserSubset(np.sort(rng.choice(data.n_users, size=min(budget, data.n_users), replace=False)))
