"""``head-users``: the most active users (Head-User in the papers)."""

from __future__ import annotations

import numpy as np

from cfbench.numerics import top_k_random_ties
from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import UserSubset


class HeadUsers(Sampler):
    name = "head-users"
    description = "The users with the most train interactions (Head-User); ties broken at random."

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> UserSubset:
        counts = data.user_counts
        top = top_k_random_ties(counts, min(budget, data.n_users), rng.random(data.n_users))  # random among ties
        return UserSubset(np.sort(top))
