"""``full``: every user — the full-data reference every subset is compared with."""

from __future__ import annotations

import numpy as np

from cfbench.memory import Footprint, UnitShape, interaction_sampler_footprint
from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import UserSubset


class Full(Sampler):
    name = "full"
    description = "Every user: the full-data reference (ignores the budget)."
    budgeted = False

    def memory_footprint(self, shape: UnitShape) -> Footprint:
        """Every user's index (the support itself is planned by the harness)."""
        return interaction_sampler_footprint(self.name, shape.n_users, shape.n_items, shape.nnz, per_user=8)

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> UserSubset:
        return UserSubset(np.arange(data.n_users))
