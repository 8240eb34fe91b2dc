"""``distill-cf-fast``: Distill-CF with a cheaper step — fewer Gumbel draws, re-weighted, and user mini-batches.

The algorithm of :mod:`samplers.distill_cf` (same outer loop, ∞-AE inner model, validation, τ
candidates, seeding and diagnostics) with two changes to the stochastic estimate of one step
(GitHub issue #10; the faithful ``distill-cf`` stays as it is, and the two are compared side by
side in ``docs/performance.md``):

1. **S′ Gumbel draws stand for S.**  X̃ = min((S/S′) Σ_{s<S′} P_s, 1) with P_s = softmax((Z + G_s)/τ)
   instead of min(Σ_{s<S} P_s, 1). Before the cap both have the expectation S · E[P]; the estimate
   is S/S′ times noisier and its sampling (half of the faithful step on ML-1M) S/S′ times cheaper.
   Where the cap never binds (τ = 5, whose rows are soft: every entry ≈ S/d) only the variance
   changes. Where it binds (τ = 1, peaked rows) a row holds at most S′ distinct argmaxes instead of
   S, so the distribution changes too; the τ candidates are raced on validation as before. The
   validation samples, and so the kept synthetic matrix, are drawn with all S draws (one forward
   pass every ``eval_every`` steps): the estimator's extra noise stays out of the data that is kept
   (``validation_draws`` = S′ puts it back in).
2. **A mini-batch of real users per step** (``batch_users`` = 1024 by default, drawn without
   replacement, a new batch every step) instead of all of them: the ∞-AE part of the step (the
   query kernel Θ(X_B, X̃), the prediction and the loss) scales with the batch.

Measured on ML-1M (2-core CPU): see ``docs/performance.md``, "Distill-CF: faithful vs fast".
"""

from __future__ import annotations

import dataclasses

import jax

from cfbench.ntk import NTKConfig
from samplers.distill_cf import Distillation, DistillCF, DistillCFConfig, _make_step, relaxed_multi_hot

__all__ = ["DistillCFFast", "DistillCFFastConfig", "FastDistillation"]


@dataclasses.dataclass(frozen=True)
class DistillCFFastConfig(DistillCFConfig):
    """Hyper-parameters of ``distill-cf-fast``: :class:`~samplers.distill_cf.DistillCFConfig`'s (S = 200
    modelled samples, τ ∈ {1, 5}, c = 10⁻³, 500 steps, patience 100, lr 0.04, the ∞-AE λ grid) plus
    ``draws`` (S′, Gumbel draws actually taken per synthetic row, each weighing S/S′) and a default
    mini-batch of real users."""

    batch_users: int = 1024  # real users per step (a new random batch each step); 0 = all users
    draws: int = 20  # S′ Gumbel draws per step, each weighing S / S′
    validation_draws: int = 0  # Gumbel draws of a validation sample (the kept matrix); 0 = all S

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.draws <= self.samples_per_user:
            raise ValueError(f"draws must be in [1, samples_per_user = {self.samples_per_user}], got {self.draws}")
        if not 0 <= self.validation_draws <= self.samples_per_user:
            raise ValueError(f"validation_draws must be in [0, samples_per_user = {self.samples_per_user}] "
                             f"(0 = all), got {self.validation_draws}")


class FastDistillation(Distillation):
    """One (τ, c) optimisation of :class:`~samplers.distill_cf.Distillation` with X̃ from S′ re-weighted draws."""

    name = "distill-cf-fast"

    def make_step(self, mean_train_length: float, tau: float, cardinality: float, ntk_config: NTKConfig):
        cfg = self.cfg
        return _make_step(cfg.lr, mean_train_length, tau, cfg.samples_per_user, cardinality, ntk_config, cfg.draws)

    def sample(self, logits: jax.Array, key: jax.Array) -> jax.Array:
        draws = self.cfg.samples_per_user if self.cfg.validation_draws == 0 else self.cfg.validation_draws
        return relaxed_multi_hot(logits, key, self.tau, self.cfg.samples_per_user, draws)


class DistillCFFast(DistillCF):
    name = "distill-cf-fast"
    description = ("Distill-CF with a cheaper step: S′ = 20 re-weighted Gumbel draws for S = 200 and 1,024 real "
                   "users per step (the faithful method is distill-cf).")
    Config = DistillCFFastConfig
    version = "1"
    Run = FastDistillation
