"""``full``: every user — the full-data reference every subset is compared with."""

from __future__ import annotations

import numpy as np

from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import UserSubset


class Full(Sampler):
    name = "full"
    description = "Every user: the full-data reference (ignores the budget)."
    budgeted = False

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> UserSubset:
        return UserSubset(np.arange(data.n_users))
