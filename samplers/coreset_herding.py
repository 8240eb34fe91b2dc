"""``coreset-herding``: kernel herding of users in the ∞-AE NTK feature space.

Kernel herding (Chen, Welling & Smola, UAI 2010) picks points whose empirical mean embedding tracks
the data's mean embedding μ(x) = (1/U) Σ_v Θ(x, v). We use its greedy-MMD form (Bach, Lacoste-Julien
& Obozinski, ICML 2012), which keeps the self-term Θ(x, x); that matters here, as the NTK diagonal grows
with a user's activity: with S_t the t users chosen so far,

    x_{t+1} = argmax_{x ∉ S_t}  μ(x) − (Σ_{s ∈ S_t} Θ(x, s) + Θ(x, x) / 2) / (t + 1),

which is the x that minimises MMD²(S_t ∪ {x}, all users) = ‖mean φ(S) − mean φ(all)‖².

Cost: μ needs Θ(X, X_R) for a reference set R, in blocks: O(nnz(X) · |R|) time, O(U · block) memory;
R = all users when U ≤ ``mean_users``, else a seeded uniform sample of ``mean_users`` users (an
unbiased estimate of μ). Then b kernel columns, O(nnz(X) + U) each.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from cfbench.memory import Footprint, UnitShape, user_kernel_footprint
from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import UserSubset
from samplers._user_kernel import UserKernel, mean_embedding, ntk_config

__all__ = ["CoresetHerding", "HerdingConfig", "kernel_herding"]


@dataclasses.dataclass(frozen=True)
class HerdingConfig:
    depth: int = 1  # NTK of the ∞-AE (cfbench.ntk.NTKConfig defaults)
    w_std: float = math.sqrt(2.0)
    b_std: float = 0.1
    mean_users: int = 10_000  # users that estimate the mean embedding (all of them up to this many)
    block_size: int = 256  # kernel columns computed at once

    def __post_init__(self) -> None:
        if self.mean_users < 1 or self.block_size < 1:
            raise ValueError("mean_users and block_size must be ≥ 1")


def kernel_herding(kernel: UserKernel, mean: np.ndarray, budget: int) -> np.ndarray:
    """Greedy-MMD kernel herding against the mean embedding ``mean``: the chosen users, in order."""
    chosen: list[int] = []
    similarity = np.zeros(kernel.n_users)  # Σ_{s ∈ S_t} Θ(x, s)
    for t in range(min(budget, kernel.n_users)):
        objective = mean - (similarity + 0.5 * kernel.diagonal) / (t + 1)
        objective[chosen] = -np.inf
        best = int(np.argmax(objective))
        chosen.append(best)
        similarity += kernel.column(best)
    return np.array(chosen, dtype=np.int64)


class CoresetHerding(Sampler):
    name = "coreset-herding"
    description = "Kernel herding of users in the ∞-AE NTK feature space (greedy MMD to the mean embedding)."
    Config = HerdingConfig

    def memory_footprint(self, shape: UnitShape) -> Footprint:
        """``block_size`` NTK columns at a time for the mean embedding (:func:`cfbench.memory.user_kernel_footprint`)."""
        return user_kernel_footprint(self.name, shape.n_users, shape.n_items, shape.nnz,
                                     columns=self.config.block_size)

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> UserSubset:
        cfg = self.config
        kernel = UserKernel.of(data.train, ntk_config(cfg.depth, cfg.w_std, cfg.b_std))
        reference = (np.arange(data.n_users) if data.n_users <= cfg.mean_users
                     else np.sort(rng.choice(data.n_users, size=cfg.mean_users, replace=False)))
        mean = mean_embedding(kernel, reference, cfg.block_size)
        return UserSubset(np.sort(kernel_herding(kernel, mean, budget)))
