"""``random-users``: users drawn uniformly without replacement (User-RNS in the papers)."""

from __future__ import annotations

import numpy as np

from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import UserSubset


class RandomUsers(Sampler):
    name = "random-users"
    description = "Uniformly random users, without replacement (User-RNS)."

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> UserSubset:
        return UserSubset(np.sort(rng.choice(data.n_users, size=min(budget, data.n_users), replace=False)))
