"""``coreset-kcenter``: greedy k-center (farthest-point) coreset of users in the ∞-AE NTK feature space.

With φ the feature map of the ∞-AE's NTK Θ, d(u, v)² = Θ(u, u) + Θ(v, v) − 2 Θ(u, v). Starting from a
seeded uniformly random user c₁, repeat c_{t+1} = argmax_u min_{j ≤ t} d(u, c_j) until b users are
chosen (Gonzalez 1985; the core-set of Sener & Savarese, ICLR 2018). This 2-approximates the
smallest covering radius max_u min_{c ∈ S} d(u, c).

Cost: b kernel columns Θ(X, x_c), each O(nnz(X) + U); memory O(U).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from cfbench.memory import Footprint, UnitShape, user_kernel_footprint
from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import UserSubset
from samplers._user_kernel import UserKernel, ntk_config

__all__ = ["CoresetKCenter", "KCenterConfig", "k_center"]


@dataclasses.dataclass(frozen=True)
class KCenterConfig:
    depth: int = 1  # NTK of the ∞-AE (cfbench.ntk.NTKConfig defaults)
    w_std: float = math.sqrt(2.0)
    b_std: float = 0.1


def k_center(kernel: UserKernel, budget: int, first: int) -> np.ndarray:
    """Farthest-point traversal from ``first``: the ``budget`` chosen users, in order of choice."""
    chosen = [int(first)]
    nearest = kernel.squared_distances(first)  # d² to the nearest chosen centre
    nearest[first] = -np.inf  # chosen users are never chosen again
    for _ in range(min(budget, kernel.n_users) - 1):
        centre = int(np.argmax(nearest))
        chosen.append(centre)
        nearest = np.minimum(nearest, kernel.squared_distances(centre))
        nearest[centre] = -np.inf
    return np.array(chosen, dtype=np.int64)


class CoresetKCenter(Sampler):
    name = "coreset-kcenter"
    description = "Greedy k-center users in the ∞-AE NTK feature space, from a random first user."
    Config = KCenterConfig

    def memory_footprint(self, shape: UnitShape) -> Footprint:
        """One NTK column at a time over all users (:func:`cfbench.memory.user_kernel_footprint`)."""
        return user_kernel_footprint(self.name, shape.n_users, shape.n_items, shape.nnz, columns=1)

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> UserSubset:
        cfg = self.config
        kernel = UserKernel.of(data.train, ntk_config(cfg.depth, cfg.w_std, cfg.b_std))
        return UserSubset(np.sort(k_center(kernel, budget, int(rng.integers(data.n_users)))))
