"""``distill-cf-robust``: Distill-CF whose samples, steps and τ are compared by a validation signal that
holds up when few users have validation items (GitHub issue #13).

``distill-cf`` and ``distill-cf-fast`` keep, over their τ candidates and validation points, the sample
with the best validation **HR@100** (the reference code's choice). On sparse data, where most users
have no validation items (the protocol gives them only to users with ≥ 6 interactions), HR@100 is a
count of hits among a few hundred users; one user moves it by ~0.4 points, candidates tie, and the
choice is noise. This sampler is ``distill-cf-fast`` (same estimator, same defaults) with one change:
candidates are compared by ``selection_metric`` (default validation **NDCG@100**), which credits every
validation hit by its rank instead of counting it once, and is also what the inner λ search inside the
distillation maximises. Where every validation choice agrees the result is the same sample.

Why NDCG@100 and what was measured: ``benchmarks/distill_selection.py`` re-runs distillations, keeps
every validation point's sample and scores each with every candidate signal and, for the study only,
on test; see the README's "Distill-CF on sparse data".
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cfbench.evaluation import METRICS, best_lambda
from cfbench.models.infinite_ae import InfiniteAE
from cfbench.splits import Split
from samplers.distill_cf_fast import DistillCFFast, DistillCFFastConfig, FastDistillation

__all__ = ["DistillCFRobust", "DistillCFRobustConfig", "RobustDistillation"]


@dataclasses.dataclass(frozen=True)
class DistillCFRobustConfig(DistillCFFastConfig):
    """``distill-cf-fast``'s hyper-parameters plus ``selection_metric``: the validation metric (of ∞-AE on the
    sample, at the best λ of the grid for that metric) by which samples, steps and τ candidates are compared."""

    selection_metric: str = "ndcg@100"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.selection_metric not in METRICS:
            raise ValueError(f"selection_metric must be one of {', '.join(METRICS)}, got {self.selection_metric!r}")


class RobustDistillation(FastDistillation):
    """:class:`~samplers.distill_cf_fast.FastDistillation` comparing samples by ``cfg.selection_metric``."""

    name = "distill-cf-robust"

    @classmethod
    def score_name(cls, cfg: DistillCFRobustConfig) -> str:  # type: ignore[override]
        return cfg.selection_metric

    @classmethod
    def score_sample(cls, cfg: DistillCFRobustConfig, xs: np.ndarray,  # type: ignore[override]
                     split: Split) -> tuple[float, float]:
        return best_lambda(InfiniteAE(), xs, split, cfg.lambda_grid, metric=cfg.selection_metric)


class DistillCFRobust(DistillCFFast):
    name = "distill-cf-robust"
    description = ("Distill-CF (the fast estimator) comparing its samples, steps and τ by validation NDCG@100, "
                   "which stays informative when few users have validation items.")
    Config = DistillCFRobustConfig
    version = "1"
    Run = RobustDistillation
