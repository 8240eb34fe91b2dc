"""``distill-cf-ease``: Distill-CF with EASE as the inner model (GitHub issue #13).

The outer loop is :mod:`samplers.distill_cf`'s, unchanged and imported: b synthetic users as a logit
matrix Z initialised from b random real users, multi-Gumbel relaxed rows X̃ = min(Σ_s P_s, 1), Adam,
the same loss on the real users' train rows, validation every ``eval_every`` steps choosing λ and
keeping the best sample, the (τ, c) candidates, budgets, seeding, skipped-step tolerance and
diagnostics. Only the inner model differs: EASE (:class:`cfbench.models.ease.EASE`) in its dual
form on the support X_s = X̃ (b × d), exact since b < d and never forming the d × d matrix B:

    W = (X_s X_sᵀ + λI)⁻¹ X_s                                   (b × d, Cholesky: ``ridge_solve``)
    s_j = Σ_u X_s[u, j] W[u, j]                                 (s = diag(X_sᵀ(X_s X_sᵀ + λI)⁻¹X_s))
    R = scores(X_q) = X_q − (X_q − (X_q X_sᵀ) W) · diag(1/(1 − s))

    L = mean_u [ −Σ_i X_ui log softmax(R_u)_i ]  +  c · mean_rows(Σ_i X̃) / (|train| / U)

λ is EASE's absolute ridge on the Gram matrix, as the downstream ``EASE(lam)`` uses it, searched
over EASE's own grid (1 … 10⁴) on validation HR@100: the sample kept is the best for a λ that the
EASE trained on it can choose.

**1 − s stays away from 0.** X_s X_sᵀ ⪰ x_j x_jᵀ for every column x_j of X_s, so
s_j ≤ ‖x_j‖² / (‖x_j‖² + λ) and, with X̃ in [0, 1] (‖x_j‖² ≤ b),

    1 − s_j ≥ λ / (λ + ‖x_j‖²) ≥ λ / (λ + b)        (≥ 1/11 for b = 10 at λ = 1).

A step whose smallest 1 − s_j falls below half this bound (only possible by rounding) has a NaN
loss, so the outer loop skips and counts it and fails with :class:`DistillationDiverged` past its
tolerance, as for any non-finite step.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from cfbench.evaluation import best_lambda
from cfbench.memory import Footprint, UnitShape, distill_cf_footprint
from cfbench.models.ease import EASE
from cfbench.ntk import NTKConfig
from cfbench.numerics import ridge_solve
from cfbench.splits import Split
from samplers.distill_cf import (Distillation, DistillCF, DistillCFConfig, LossParts, finite_adam_step,
                                 multinomial_nll, relaxed_multi_hot)

__all__ = ["DistillCFEase", "DistillCFEaseConfig", "EaseDistillation", "ease_distillation_loss", "ease_dual_fit",
           "ease_dual_scores"]

EASE_LAMBDAS = "/".join(f"{lam:g}" for lam in EASE.lambda_grid)  # "1/5/20/…/10000"


def ease_dual_fit(xs: jax.Array, lam: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(W, 1 − s): W = (X_s X_sᵀ + λI)⁻¹ X_s and s_j = Σ_u X_s[u, j] W[u, j]."""
    w = ridge_solve(xs @ xs.T, xs, lam)
    return w, 1.0 - jnp.sum(xs * w, axis=0)


def ease_dual_scores(queries: jax.Array, xs: jax.Array, w: jax.Array, one_minus_s: jax.Array) -> jax.Array:
    """R = X_q − (X_q − (X_q X_sᵀ) W) · diag(1/(1 − s)) = X_q B, B EASE's zero-diagonal item-item matrix."""
    return queries - (queries - (queries @ xs.T) @ w) * (1.0 / one_minus_s)[None, :]


def one_minus_s_floor(lam: jax.Array, budget: int) -> jax.Array:
    """Half the guaranteed lower bound λ / (λ + b) of 1 − s_j for rows in [0, 1] (see the module docstring)."""
    return 0.5 * lam / (lam + budget)


def blocked_ease_nll(target_blocks: jax.Array, xs: jax.Array, w: jax.Array, one_minus_s: jax.Array) -> jax.Array:
    """Σ over blocks (n_blocks, block, d) of the multinomial NLL of EASE's scores; blocks re-materialised in backward."""
    @jax.checkpoint
    def block_nll(block: jax.Array) -> jax.Array:
        return multinomial_nll(block, ease_dual_scores(block, xs, w, one_minus_s))

    def add(total, block):
        return total + block_nll(block), None
    return jax.lax.scan(add, jnp.zeros((), xs.dtype), target_blocks)[0]


def ease_distillation_loss(logits: jax.Array, key: jax.Array, target_blocks: jax.Array, n_targets: jax.Array,
                           lam: jax.Array, mean_train_length: float, tau: float, n_samples: int,
                           cardinality: float) -> tuple[jax.Array, LossParts]:
    """L = NLL / U_batch + c · mean_rows(Σ_i X̃) / (mean train row length), NLL of EASE's scores with support X̃.

    NaN (a skipped step) where min_j (1 − s_j) < ½ λ / (λ + b), which exact arithmetic rules out."""
    xs = relaxed_multi_hot(logits, key, tau, n_samples)
    w, one_minus_s = ease_dual_fit(xs, lam)
    nll = blocked_ease_nll(target_blocks, xs, w, one_minus_s) / n_targets
    card = jnp.mean(jnp.sum(xs, axis=1)) / mean_train_length
    loss = nll + cardinality * card
    safe = jnp.min(one_minus_s) >= one_minus_s_floor(lam, xs.shape[0])
    return jnp.where(safe, loss, jnp.nan), LossParts(nll, card)


@functools.lru_cache(maxsize=16)
def _make_ease_step(lr: float, mean_train_length: float, tau: float, n_samples: int, cardinality: float):
    """The jitted Adam step on :func:`ease_distillation_loss` (cached: the same settings compile once)."""
    loss = functools.partial(ease_distillation_loss, mean_train_length=mean_train_length, tau=tau,
                             n_samples=n_samples, cardinality=cardinality)
    return finite_adam_step(lr, loss)


def _validate_ease(xs: np.ndarray, split: Split, grid: tuple[float, ...]) -> tuple[float, float]:
    """(best λ, validation HR@100) of EASE with support X̃ over ``grid``."""
    return best_lambda(EASE(), xs, split, grid)


class EaseDistillation(Distillation):
    """One (τ, c) optimisation of :class:`~samplers.distill_cf.Distillation` with EASE as the inner model."""

    name = "distill-cf-ease"

    def make_step(self, mean_train_length: float, tau: float, cardinality: float, ntk_config: NTKConfig):
        cfg = self.cfg
        return _make_ease_step(cfg.lr, mean_train_length, tau, cfg.samples_per_user, cardinality)

    @staticmethod
    def validate(xs: np.ndarray, split: Split, grid: tuple[float, ...]) -> tuple[float, float]:
        return _validate_ease(xs, split, grid)

    def _advice(self) -> str:
        return (super()._advice() + f"; the loss is also NaN where 1 − s_j < ½ λ/(λ + b) = "
                f"{float(one_minus_s_floor(self.lam, self.budget)):.3g} (rounding in EASE's dual solve)")


@dataclasses.dataclass(frozen=True)
class DistillCFEaseConfig(DistillCFConfig):
    """Hyper-parameters of ``distill-cf-ease``: those of :class:`~samplers.distill_cf.DistillCFConfig`,
    whose defaults (τ ∈ {1, 5}, c = 10⁻³, 500 steps, patience 100, lr 0.04, S = 200) were chosen
    with ∞-AE inside and are kept, except ``lambdas``: EASE's own grid (absolute ridge on the
    Gram matrix), so that the sample kept is the best for a λ the downstream EASE can choose."""

    lambdas: str = EASE_LAMBDAS  # EASE ridge grid searched on validation: the model's grid


class DistillCFEase(DistillCF):
    name = "distill-cf-ease"
    description = "Distill-CF with EASE as the inner model: synthetic users learned through EASE's dual closed form."
    Config = DistillCFEaseConfig
    version = "1"
    Run = EaseDistillation

    def memory_footprint(self, shape: UnitShape) -> Footprint:
        """Distill-CF's footprint (:func:`cfbench.memory.distill_cf_footprint`) with EASE's grid size.

        The step's terms match (b × d: X̃, W and their gradients; b × b: the Gram matrix, its factor;
        per target block: block × b and block × d scores); the validation term is ∞-AE's λ search,
        which keeps at least as many b × d fits alive as EASE's (three), so it bounds it."""
        cfg = self.config
        footprint = distill_cf_footprint(shape.n_users, shape.n_items, shape.nnz, shape.budget,
                                         candidates=len(cfg.candidates()), batch_users=cfg.batch_users,
                                         block_users=cfg.block_users, grid_size=len(cfg.lambda_grid),
                                         eval_positives=shape.positives, eval_chunks=shape.eval_chunks)
        return dataclasses.replace(footprint, what=footprint.what.replace("distill-cf", self.name, 1),
                                   advice=footprint.advice.replace("distill-cf:", f"{self.name}:"))
