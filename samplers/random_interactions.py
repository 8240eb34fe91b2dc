"""``random-interactions``: a uniformly random set of train interactions (Interaction-RNS).

With N train interactions, U users and a budget of b users, it keeps exactly
K = round(N · b / U) interactions (:meth:`SelectionData.interaction_budget`), every K-subset
equally likely. The reference (sampling_cf ``interaction_rns``) removes a random ``percent`` % of
train rows, the same rule with the budget given as a removed fraction.
"""

from __future__ import annotations

import numpy as np

from cfbench.memory import Footprint, UnitShape, interaction_sampler_footprint
from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import InteractionSubset


def random_mask(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask of length ``n`` with exactly ``k`` True entries at uniformly random positions."""
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=k, replace=False)] = True
    return mask


class RandomInteractions(Sampler):
    name = "random-interactions"
    description = "Uniformly random train interactions, the budget's fraction b/U of them (Interaction-RNS)."

    def memory_footprint(self, shape: UnitShape) -> Footprint:
        """The mask (1 B per interaction) and ``Generator.choice``'s permutation (int64) and result."""
        return interaction_sampler_footprint(self.name, shape.n_users, shape.n_items, shape.nnz, per_interaction=25)

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> InteractionSubset:
        keep = data.interaction_budget(budget)
        if keep < 1:
            raise ValueError(f"sampler {self.name!r}: a budget of {budget} users allows no train interaction")
        return InteractionSubset(random_mask(data.train.nnz, keep, rng))
