"""``head-users``: the most active users (Head-User in the papers)."""

from __future__ import annotations

import numpy as np

from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import UserSubset


class HeadUsers(Sampler):
    name = "head-users"
    description = "The users with the most train interactions (Head-User); ties broken at random."

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> UserSubset:
        counts = data.user_counts
        order = np.lexsort((rng.random(data.n_users), -counts))  # most active first, random among ties
        return UserSubset(np.sort(order[: min(budget, data.n_users)]))
